//! `evolve`: search for five genes in `0..100` that sum to 231. Each generation the
//! population is shuffled and cut into chunks; `map` runs one `evolve` task per chunk
//! (scoring it and breeding children), spread over both agents; the best genomes across
//! all chunks plus every child make the next generation.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Context, bail};
use brine_scheduler::{Cluster, Module};
use example_evolve::{EvolveArgs, EvolveResult, Genome, Rng};
use futures::StreamExt;

/// Chunks (tasks) per generation, and genomes per chunk.
const CHUNKS: usize = 8;
const CHUNK: usize = 16;
/// Best genomes carried over unchanged into the next generation.
const ELITE: usize = 2 * CHUNKS;
/// Distinct exact solutions wanted, and the most generations tried.
const WANTED: usize = 10;
const GENERATIONS: u64 = 300;

pub async fn run(cluster: &Cluster, module: &Module) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = Rng::new(2024);
    let mut population = example_evolve::random_population(1, CHUNKS * CHUNK);
    let mut solutions = BTreeSet::new();
    let mut evaluated = 0;
    for generation in 1..=GENERATIONS {
        rng.shuffle(&mut population);
        let chunks: Vec<EvolveArgs> = population
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, chunk)| EvolveArgs {
                population: chunk.to_vec(),
                seed: generation * 1000 + i as u64,
                // Children replace all but the elite's share of the chunk.
                offspring: (CHUNK - ELITE / CHUNKS) as u32,
                mutation_rate: 0.2,
            })
            .collect();
        let results = evaluate(cluster, module, chunks).await?;
        evaluated += population.len();
        let summary = example_evolve::summarize(&results).context("evolve returned no genomes")?;
        solutions.extend(summary.exact);
        println!(
            "generation {generation:>3}: population {}, evaluated {evaluated:>5}, best fitness \
             {:.3}, median {:.3}, exact solutions so far {}",
            population.len(),
            summary.best.fitness,
            summary.median,
            solutions.len()
        );
        if solutions.len() >= WANTED {
            println!(
                "Found {} exact solutions in {generation} generations ({:.1?}); the first {WANTED}:",
                solutions.len(),
                started.elapsed()
            );
            for genome in solutions.iter().take(WANTED) {
                print_solution(genome);
            }
            return Ok(());
        }
        population = example_evolve::next_population(&results, ELITE);
    }
    bail!(
        "evolve found {} of {WANTED} exact solutions in {GENERATIONS} generations",
        solutions.len()
    )
}

/// One generation: every chunk as a task, in parallel; results in chunk order.
async fn evaluate(
    cluster: &Cluster,
    module: &Module,
    chunks: Vec<EvolveArgs>,
) -> anyhow::Result<Vec<EvolveResult>> {
    let n = chunks.len();
    let mut results: Vec<Option<EvolveResult>> = vec![None; n];
    let mut stream =
        std::pin::pin!(cluster.map::<EvolveArgs, EvolveResult, _>(module, "evolve", chunks));
    while let Some((i, result)) = stream.next().await {
        let result = result.with_context(|| format!("evolve chunk {i}"))?;
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("no result for evolve chunk {i}")))
        .collect()
}

fn print_solution(genome: &Genome) {
    let genes: Vec<String> = genome.iter().map(u8::to_string).collect();
    println!(
        "  {} = {}",
        genes.join(" + "),
        example_evolve::gene_sum(genome)
    );
}
