//! Execution: the [`Backend`] seam that a backend implements, the one runner that walks a
//! plan's schedule through it, cargo invocations (shared by every backend), file steps,
//! and the report.

pub mod cargo;
pub mod files;
pub mod report;
pub mod runner;

use anyhow::Result;

use crate::plan::{BaseImage, ImageBuild, Push};
pub(crate) use crate::publish::record::{Attached, Pushed};

/// What an image build produced, as the engine or the assembler reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltImage {
    pub(crate) id: String,
    pub(crate) size: u64,
    pub(crate) os: String,
    pub(crate) architecture: String,
    pub(crate) variant: Option<String>,
    /// Nothing that goes into the image changed, so the last run's result was kept.
    pub(crate) reused: bool,
}

/// A build's facts and the backend's own result, which its push takes back.
#[derive(Debug, Clone)]
pub(crate) struct Built<I> {
    pub(crate) facts: BuiltImage,
    pub(crate) image: I,
}

/// One piece of a backend's work, for descriptions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Work<'a> {
    /// The pre-flight lookup of a base image.
    BaseImage(&'a BaseImage),
    Image(&'a ImageBuild),
    Push(&'a Push),
}

/// A backend: how an image is built from a staged context and pushed by digest, and the
/// words `--dry-run` uses for it. The runner owns order, parallelism, retries, cargo and
/// file steps; a backend owns only its own work. Build results come back to the push as
/// values ([`Built::image`]), never through shared state. Tags are not a
/// backend's business: `publish` moves them, over the registry API, for every backend.
pub(crate) trait Backend: Sync {
    /// What a build hands to its push: nothing for an engine that keeps the
    /// image, the assembled image for the OCI backend.
    type Image: Send + Sync;

    /// The command lines (or, without an engine, the words) `work` stands for.
    fn describe(&self, work: Work<'_>) -> Vec<String>;
    /// The lines of every image build, each with the platforms it builds (one platform,
    /// or several joined by `, ` for an invocation that builds them together).
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
    /// Builds one platform's image.
    fn build_image(&self, build: &ImageBuild) -> Result<Built<Self::Image>>;
    /// Builds every platform's image, one result per build in order; by default each on
    /// its own, `jobs` at a time.
    fn build_images(&self, builds: &[&ImageBuild], jobs: usize) -> Vec<Result<Built<Self::Image>>> {
        runner::each_in_parallel(builds, jobs, |build| self.build_image(build))
    }
    /// The file system of the base image `base` for `platform`, for the start check of a
    /// binary that needs a loader or libraries from it.
    fn base_rootfs(
        &self,
        base: &str,
        platform: &'static crate::config::platform::Platform,
    ) -> Result<crate::rootfs::Rootfs>;
    /// Pushes one platform's image by digest, under no tag, and says what it pushed.
    fn push(&self, push: &Push, image: &Self::Image) -> Result<Pushed>;
}
