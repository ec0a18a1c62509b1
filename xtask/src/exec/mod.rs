//! Execution: the runner that carries out a plan through an [`Executor`], the programs it
//! drives (cargo, docker), and the report.

pub mod cargo;
pub mod docker;
pub mod files;
pub mod oci;
pub mod report;
pub mod runner;

use anyhow::Result;

use crate::config::image_ref::ImageRef;
use crate::plan::{CargoBuild, ImageBuild, Publish, Push};

/// What an image build produced, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub id: String,
    pub size: u64,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// One piece of work an executor carries out, for descriptions.
#[derive(Debug, Clone, Copy)]
pub enum Work<'a> {
    Cargo(&'a CargoBuild),
    Image(&'a ImageBuild),
    Push(&'a Push),
    /// A publish with its sources written out (digests, or placeholders in a dry run).
    Publish(&'a Publish, &'a [String]),
}

/// The seam between the plan and the programs that carry it out. The runner owns order,
/// parallelism, retries and file steps; an executor owns how each piece of work is done.
/// The Docker executor drives `cargo` and `docker`; a backend without an engine implements
/// the same calls over the registry API, and tests use a recording fake.
pub trait Executor: Sync {
    /// The command lines `work` runs, for `--dry-run`.
    fn describe(&self, work: Work<'_>) -> Vec<String>;
    /// The command lines of every image build, each with the platforms it builds (one
    /// platform, or several joined by `, ` for an invocation that builds them together).
    fn describe_images(&self, builds: &[&ImageBuild]) -> Vec<(String, String)> {
        builds
            .iter()
            .flat_map(|build| {
                let scope = build.platform.name();
                self.describe(Work::Image(build))
                    .into_iter()
                    .map(move |line| (scope.clone(), line))
            })
            .collect()
    }
    /// Compiles one platform's binaries.
    fn cargo(&self, build: &CargoBuild) -> Result<()>;
    /// Builds one platform's image and reports what was built.
    fn build_image(&self, build: &ImageBuild) -> Result<BuiltImage>;
    /// Builds every platform's image, one result per build in order; by default each on
    /// its own, `jobs` at a time.
    fn build_images(&self, builds: &[&ImageBuild], jobs: usize) -> Vec<Result<BuiltImage>> {
        runner::each_in_parallel(builds, jobs, |build| self.build_image(build))
    }
    /// Pushes one platform's tags and returns the digest they name.
    fn push(&self, push: &Push) -> Result<String>;
    /// Publishes one tag from `sources` (`repo@sha256:...`, one per platform, in the
    /// publish's entry order) and returns the digest of what was published.
    fn publish(&self, publish: &Publish, sources: &[ImageRef]) -> Result<String>;
}
