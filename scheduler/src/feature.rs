//! [`Feature`]: the optional parts of the library, each a cargo feature.

/// An optional part of brine-scheduler, turned on by the cargo feature of the same
/// name. A master that needs a part this build leaves out is refused at run time with
/// [`crate::ClusterError::FeatureDisabled`] naming it, so a program that accepts master
/// URLs from its users compiles with any set of features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// `local`: `local` / `local:N` masters, an in-process `brine-local` cluster.
    Local,
    /// `zk`: `zk://` masters, the leader read from ZooKeeper.
    Zk,
    /// `tls`: `https://` masters.
    Tls,
}

impl Feature {
    /// The cargo feature's name, as written in `Cargo.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Local => "local",
            Feature::Zk => "zk",
            Feature::Tls => "tls",
        }
    }

    /// Whether this build has it.
    pub fn is_enabled(self) -> bool {
        match self {
            Feature::Local => cfg!(feature = "local"),
            Feature::Zk => cfg!(feature = "zk"),
            Feature::Tls => cfg!(feature = "tls"),
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
