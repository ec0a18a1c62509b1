//! The one order of a run, as data: the runner executes it and the dry run describes it,
//! so the two cannot drift apart.

use std::path::Path;

use crate::plan::{BaseImage, CargoInvocation, ImageBuild, Plan, Push, PushId, Release};

/// One phase of a run; each starts when the one before it ended everywhere.
#[derive(Debug)]
pub(crate) enum Phase<'a> {
    /// The base images the pre-flight looks up before anything runs.
    BaseImages(&'a [BaseImage]),
    /// Every platform's context: directories, Dockerfiles, mirrored files.
    Contexts,
    /// The cargo invocations (one per compatible group of targets), with the platform
    /// plans each serves.
    Compile(Vec<(CargoInvocation, Vec<usize>)>),
    /// Every platform's binaries (and QEMU) staged into its context.
    Stage,
    /// Every platform's image, in platform order.
    Images(Vec<&'a ImageBuild>),
    /// Every platform's push by digest, under no tag; none starts before every image is
    /// built.
    Pushes(Vec<(PushId, &'a Push)>),
    /// Every push's record written into the directory (`--push-by-digest`).
    Records(&'a Path),
    /// Every package's release from this run's pushes: checked, joined into an index,
    /// signed, and only then tagged; none before every push.
    Publish(&'a [Release]),
}

/// The phases of `plan`, in the order they run.
pub(crate) fn schedule(plan: &Plan) -> Vec<Phase<'_>> {
    [
        Phase::BaseImages(&plan.base_images),
        Phase::Contexts,
        Phase::Compile(plan.cargo_builds()),
        Phase::Stage,
        Phase::Images(plan.platforms.iter().map(|p| &p.image).collect()),
        Phase::Pushes(plan.pushes().collect()),
    ]
    .into_iter()
    .chain(plan.records.as_deref().map(Phase::Records))
    .chain((!plan.releases.is_empty()).then_some(Phase::Publish(&plan.releases)))
    .collect()
}
