//! Mesos's fetcher conventions that both sides of a launch must agree on: the name a
//! `CommandInfo.URI` is fetched under in the sandbox when it has no `output_file`.
//!
//! The scheduler needs it to tell an executor where its dataset will be; the agent's
//! fetcher names the file. Like Mesos's fetcher, it takes the URI's last path component.

/// The name a fetched file gets when its URI has no `output_file`: the last non-empty
/// path component of the URI or path, query and fragment ignored; `None` when there is
/// none (`http://host/`) or it is `.` or `..`.
pub fn basename(uri: &str) -> Option<String> {
    let path = match uri.split_once("://") {
        Some((_, rest)) => {
            let rest = rest.split(['?', '#']).next().unwrap_or(rest);
            rest.split_once('/').map(|(_, p)| p).unwrap_or("")
        }
        None => uri,
    };
    path.rsplit('/')
        .find(|c| !c.is_empty())
        .filter(|c| *c != "." && *c != "..")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_last_path_component() {
        assert_eq!(basename("http://h:1/a/b.tgz?x=1").as_deref(), Some("b.tgz"));
        assert_eq!(basename("file:///tmp/x").as_deref(), Some("x"));
        assert_eq!(basename("/tmp/dir/").as_deref(), Some("dir"));
        assert_eq!(basename("hdfs://nn/d/").as_deref(), Some("d"));
        assert_eq!(
            basename("http://files:8080/d/corpus.txt?v=2#x").as_deref(),
            Some("corpus.txt")
        );
        assert_eq!(basename("http://h/"), None);
        assert_eq!(basename("http://h/a/.."), None);
    }
}
