//! `evolve`: one generation of a genetic algorithm, on one shard of the population.
//!
//! The search: five genes in `0..100` whose sum is [`TARGET`] (231). A genome's fitness is
//! `1 / (1 + |sum − 231|)`, so 1.0 is an exact hit. A task scores its shard and breeds
//! `offspring` children from it (tournament selection, one-point crossover, mutation);
//! everything it does is determined by its arguments, seed included.
//!
//! A driver runs generations across many tasks: split the population into shards, run one
//! `evolve` per shard (each with its own seed), then build the next population from all
//! the shards' results with [`next_population`] (the best genomes overall survive, the
//! offspring fill the rest), shuffle, split again, and repeat until a fitness of 1.0
//! shows up. Because survivors are picked across shards, good genes spread between
//! shards from one generation to the next.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Genes per genome.
pub const GENES: usize = 5;
/// Genes lie in `0..GENE_LIMIT`.
pub const GENE_LIMIT: u8 = 100;
/// The sum being searched for.
pub const TARGET: u32 = 231;
/// Contestants per tournament.
pub const TOURNAMENT: usize = 3;

/// One candidate solution.
pub type Genome = [u8; GENES];

/// Arguments of `evolve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolveArgs {
    /// This task's shard of the population (every gene in `0..100`).
    pub population: Vec<Genome>,
    /// Seed for selection, crossover and mutation.
    pub seed: u64,
    /// How many children to breed from the shard.
    pub offspring: u32,
    /// Probability, in `0.0..=1.0`, that each gene of a child mutates.
    pub mutation_rate: f64,
}

/// A genome and its fitness.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The genome.
    pub genome: Genome,
    /// `1 / (1 + |sum − 231|)`; 1.0 is an exact hit.
    pub fitness: f64,
}

/// Result of `evolve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolveResult {
    /// The shard, scored and sorted best first (ties by genome, so the order is total).
    pub scored: Vec<Scored>,
    /// The children bred from the shard.
    pub offspring: Vec<Genome>,
}

/// Arguments `evolve` rejects (a guest error, message from `Display`).
#[derive(Debug, Clone, PartialEq)]
pub enum EvolveError {
    /// A gene of the given genome is not in `0..100`.
    GeneOutOfRange(Genome),
    /// `mutation_rate` is not a probability.
    MutationRate(f64),
    /// Offspring were asked for from an empty shard.
    EmptyPopulation,
}

impl fmt::Display for EvolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GeneOutOfRange(genome) => {
                write!(f, "genome {genome:?} has a gene outside 0..{GENE_LIMIT}")
            }
            Self::MutationRate(rate) => write!(f, "mutation_rate {rate} is not in 0.0..=1.0"),
            Self::EmptyPopulation => f.write_str("cannot breed offspring from an empty population"),
        }
    }
}

impl std::error::Error for EvolveError {}

/// Task `evolve`: [`EvolveArgs`] → [`EvolveResult`].
#[brine_guest::task]
pub fn evolve(args: EvolveArgs) -> Result<EvolveResult, EvolveError> {
    if let Some(bad) = args
        .population
        .iter()
        .find(|g| g.iter().any(|&x| x >= GENE_LIMIT))
    {
        return Err(EvolveError::GeneOutOfRange(*bad));
    }
    if !(0.0..=1.0).contains(&args.mutation_rate) {
        return Err(EvolveError::MutationRate(args.mutation_rate));
    }
    if args.population.is_empty() && args.offspring > 0 {
        return Err(EvolveError::EmptyPopulation);
    }
    let scored = score(&args.population);
    let mut rng = Rng::new(args.seed);
    let offspring = (0..args.offspring)
        .map(|_| breed(&scored, args.mutation_rate, &mut rng))
        .collect();
    Ok(EvolveResult { scored, offspring })
}

/// The sum of a genome's genes.
pub fn gene_sum(genome: &Genome) -> u32 {
    genome.iter().map(|&x| u32::from(x)).sum()
}

/// `1 / (1 + |sum − 231|)`.
pub fn fitness(genome: &Genome) -> f64 {
    1.0 / (1.0 + f64::from(gene_sum(genome).abs_diff(TARGET)))
}

/// Scores genomes and sorts them best first.
pub fn score(population: &[Genome]) -> Vec<Scored> {
    let mut scored: Vec<Scored> = population
        .iter()
        .map(|&genome| Scored {
            genome,
            fitness: fitness(&genome),
        })
        .collect();
    scored.sort_by(|a, b| {
        b.fitness
            .total_cmp(&a.fitness)
            .then(a.genome.cmp(&b.genome))
    });
    scored
}

/// One child: two tournament winners, one-point crossover, then per-gene mutation.
/// `scored` must be sorted best first and not empty.
fn breed(scored: &[Scored], mutation_rate: f64, rng: &mut Rng) -> Genome {
    let mother = tournament(scored, rng);
    let father = tournament(scored, rng);
    // A cut in 1..GENES, so each parent gives at least one gene.
    let cut = 1 + rng.below(GENES as u64 - 1) as usize;
    let mut child = mother;
    child[cut..].copy_from_slice(&father[cut..]);
    for gene in &mut child {
        if rng.chance(mutation_rate) {
            *gene = mutate(*gene, rng);
        }
    }
    child
}

/// The best of [`TOURNAMENT`] random picks. The shard is sorted best first, so the best
/// contestant is simply the one with the lowest index.
fn tournament(scored: &[Scored], rng: &mut Rng) -> Genome {
    let len = scored.len() as u64;
    let winner = (0..TOURNAMENT).map(|_| rng.below(len)).min().unwrap_or(0);
    scored[winner as usize].genome
}

/// Half the time a small step (±1..=5, fine-tuning near the target), otherwise a fresh
/// random gene (keeps diversity); always within `0..100`.
fn mutate(gene: u8, rng: &mut Rng) -> u8 {
    if rng.chance(0.5) {
        let step = 1 + rng.below(5) as u8;
        if rng.chance(0.5) {
            gene.saturating_sub(step)
        } else {
            gene.saturating_add(step).min(GENE_LIMIT - 1)
        }
    } else {
        rng.below(u64::from(GENE_LIMIT)) as u8
    }
}

/// A random population for the first generation (a driver helper).
pub fn random_population(seed: u64, size: usize) -> Vec<Genome> {
    let mut rng = Rng::new(seed);
    (0..size)
        .map(|_| std::array::from_fn(|_| rng.below(u64::from(GENE_LIMIT)) as u8))
        .collect()
}

/// The next population from one generation's shard results (a driver helper): the
/// `elite` best genomes across all shards, then every child, in that order.
pub fn next_population(results: &[EvolveResult], elite: usize) -> Vec<Genome> {
    let mut best: Vec<Scored> = results
        .iter()
        .flat_map(|r| r.scored.iter().copied())
        .collect();
    best.sort_by(|a, b| {
        b.fitness
            .total_cmp(&a.fitness)
            .then(a.genome.cmp(&b.genome))
    });
    best.iter()
        .take(elite)
        .map(|s| s.genome)
        .chain(results.iter().flat_map(|r| r.offspring.iter().copied()))
        .collect()
}

/// The best genome in a generation's results, if any.
pub fn best(results: &[EvolveResult]) -> Option<Scored> {
    results
        .iter()
        .filter_map(|r| r.scored.first().copied())
        .max_by(|a, b| {
            a.fitness
                .total_cmp(&b.fitness)
                .then(b.genome.cmp(&a.genome))
        })
}

/// What a driver reports of one generation's results (a driver helper).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The fittest genome scored.
    pub best: Scored,
    /// The median fitness of every genome scored (the upper one of an even count).
    pub median: f64,
    /// The genomes that solve the puzzle exactly (fitness 1), possibly repeated.
    pub exact: Vec<Genome>,
}

/// Sums up a generation; `None` when no genome was scored.
pub fn summarize(results: &[EvolveResult]) -> Option<Summary> {
    let best = best(results)?;
    let scored: Vec<&Scored> = results.iter().flat_map(|r| &r.scored).collect();
    let mut fitness: Vec<f64> = scored.iter().map(|s| s.fitness).collect();
    fitness.sort_by(f64::total_cmp);
    Some(Summary {
        best,
        median: fitness
            .get(fitness.len() / 2)
            .copied()
            .unwrap_or(best.fitness),
        exact: scored
            .iter()
            .filter(|s| s.fitness >= 1.0)
            .map(|s| s.genome)
            .collect(),
    })
}

/// The SDK's deterministic xoshiro256++ (seeded through splitmix64), re-exported for
/// host code that drives evolution.
pub use brine_guest::rng::Rng;

// Host tests: they use the host stand-in for the `brine` imports.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use brine_guest::{Encoding, testing};

    use super::*;

    fn args(population: Vec<Genome>, seed: u64) -> EvolveArgs {
        EvolveArgs {
            population,
            seed,
            offspring: 40,
            mutation_rate: 0.2,
        }
    }

    #[test]
    fn fitness_peaks_at_the_target() {
        assert_eq!(fitness(&[46, 46, 46, 46, 47]), 1.0);
        assert_eq!(fitness(&[99, 99, 33, 0, 0]), 1.0);
        assert_eq!(fitness(&[46, 46, 46, 46, 46]), 0.5);
        assert_eq!(fitness(&[46, 46, 46, 46, 48]), 0.5);
        assert_eq!(fitness(&[0; 5]), 1.0 / 232.0);
        assert_eq!(fitness(&[99; 5]), 1.0 / 265.0);
    }

    #[test]
    fn scores_sorted_best_first() {
        let population = random_population(1, 50);
        let result = evolve(args(population.clone(), 9)).unwrap();
        assert_eq!(result.scored.len(), 50);
        assert!(
            result
                .scored
                .windows(2)
                .all(|w| w[0].fitness >= w[1].fitness)
        );
        let mut scored: Vec<Genome> = result.scored.iter().map(|s| s.genome).collect();
        let mut original = population;
        scored.sort();
        original.sort();
        assert_eq!(scored, original);
        assert!(
            result
                .scored
                .iter()
                .all(|s| s.fitness == fitness(&s.genome))
        );
    }

    #[test]
    fn offspring_stay_in_range_and_count() {
        for rate in [0.0, 0.2, 1.0] {
            let mut a = args(random_population(2, 30), 5);
            a.mutation_rate = rate;
            a.offspring = 500;
            let result = evolve(a).unwrap();
            assert_eq!(result.offspring.len(), 500);
            assert!(result.offspring.iter().flatten().all(|&g| g < GENE_LIMIT));
        }
    }

    #[test]
    fn without_mutation_children_inherit_genes_in_place() {
        let population = random_population(3, 10);
        let mut a = args(population.clone(), 11);
        a.mutation_rate = 0.0;
        let result = evolve(a).unwrap();
        for child in &result.offspring {
            for (i, gene) in child.iter().enumerate() {
                assert!(population.iter().any(|p| p[i] == *gene), "{child:?}");
            }
            // One-point crossover: a prefix of one parent, the rest of another.
            let from_prefix = (1..GENES).any(|cut| {
                population.iter().any(|m| m[..cut] == child[..cut])
                    && population.iter().any(|f| f[cut..] == child[cut..])
            });
            assert!(from_prefix, "{child:?}");
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let population = random_population(4, 20);
        let a = evolve(args(population.clone(), 77)).unwrap();
        let b = evolve(args(population.clone(), 77)).unwrap();
        assert_eq!(a, b);
        let c = evolve(args(population, 78)).unwrap();
        assert_ne!(a.offspring, c.offspring);
    }

    #[test]
    fn selection_favours_the_fit() {
        // One perfect genome among poor ones: tournaments pick it far above its share.
        let mut population = vec![[0u8; 5]; 19];
        population.push([46, 46, 46, 46, 47]);
        let mut a = args(population, 1);
        a.mutation_rate = 0.0;
        a.offspring = 1000;
        let result = evolve(a).unwrap();
        let with_good_genes = result.offspring.iter().filter(|c| c.contains(&46)).count();
        // Picked with probability 1 − (19/20)³ ≈ 14% per parent; a child has two parents.
        assert!(with_good_genes > 200, "{with_good_genes}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut a = args(vec![[1, 2, 3, 4, 100]], 0);
        assert_eq!(
            evolve(a.clone()),
            Err(EvolveError::GeneOutOfRange([1, 2, 3, 4, 100]))
        );
        a.population = vec![[1; 5]];
        a.mutation_rate = 1.5;
        assert!(matches!(
            evolve(a.clone()),
            Err(EvolveError::MutationRate(_))
        ));
        a.mutation_rate = f64::NAN;
        assert!(matches!(
            evolve(a.clone()),
            Err(EvolveError::MutationRate(_))
        ));
        a.mutation_rate = 0.1;
        a.population.clear();
        assert_eq!(evolve(a.clone()), Err(EvolveError::EmptyPopulation));
        a.offspring = 0;
        assert_eq!(
            evolve(a).unwrap(),
            EvolveResult {
                scored: vec![],
                offspring: vec![]
            }
        );
    }

    #[test]
    fn a_summary_has_the_best_the_median_and_every_exact_hit() {
        let scored = |genome: Genome| Scored {
            genome,
            fitness: fitness(&genome),
        };
        // Sums 231 (exact), 230, 200 in one shard; 231 again and 100 in another.
        let results = [
            EvolveResult {
                scored: vec![
                    scored([46, 46, 46, 46, 47]),
                    scored([46; 5]),
                    scored([40; 5]),
                ],
                offspring: vec![],
            },
            EvolveResult {
                scored: vec![scored([47, 46, 46, 46, 46]), scored([20; 5])],
                offspring: vec![],
            },
        ];
        let summary = summarize(&results).unwrap();
        assert_eq!(summary.best.fitness, 1.0);
        assert_eq!(
            summary.median,
            fitness(&[46; 5]),
            "230 is the middle of five"
        );
        assert_eq!(
            summary.exact,
            vec![[46, 46, 46, 46, 47], [47, 46, 46, 46, 46]]
        );
        assert_eq!(summarize(&[]), None);
    }

    /// A driver as a scheduler would run it: shards, one task each, merge, reshuffle.
    #[test]
    fn a_sharded_driver_converges() {
        const SIZE: usize = 64;
        const SHARDS: usize = 4;
        const ELITE: usize = 4;
        let mut population = random_population(2024, SIZE);
        let mut shuffler = Rng::new(99);
        let mut mean_fitness = 0.0;
        for generation in 0..40u64 {
            shuffler.shuffle(&mut population);
            let results: Vec<EvolveResult> = population
                .chunks(SIZE / SHARDS)
                .enumerate()
                .map(|(i, shard)| {
                    let args = EvolveArgs {
                        population: shard.to_vec(),
                        seed: generation * 1000 + i as u64,
                        offspring: ((SIZE - ELITE) / SHARDS) as u32,
                        mutation_rate: 0.1,
                    };
                    // Through the ABI entry, as the executor would run it.
                    testing::run(__brine_task_evolve, &args, Encoding::Postcard).unwrap()
                })
                .collect();
            population = next_population(&results, ELITE);
            assert_eq!(population.len(), SIZE);
            mean_fitness = score(&population).iter().map(|s| s.fitness).sum::<f64>() / SIZE as f64;
        }
        // Not just one lucky hit: most of the population sits at or next to the target.
        let hits = population.iter().filter(|g| fitness(g) == 1.0).count();
        assert!(
            hits >= SIZE / 4,
            "{hits} exact hits, mean fitness {mean_fitness}"
        );
        assert!(mean_fitness > 0.5, "{mean_fitness}");
    }
}
