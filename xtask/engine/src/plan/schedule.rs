//! The one order of a run, as data: the runner executes it and the dry run describes it,
//! so the two cannot drift apart.

use crate::plan::{BaseImage, CargoInvocation, ImageBuild, Plan, Publish, Push, PushId};

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
    /// Every platform's push; none starts before every image is built.
    Pushes(Vec<(PushId, &'a Push)>),
    /// Every tag, from the digests of the pushes it names; none before every push.
    Publishes(&'a [Publish]),
    /// Signatures (and SBOM attestations) of every push and every tag that asks for
    /// them, once everything is published.
    Sign(Vec<(PushId, &'a Push)>, &'a [Publish]),
}

/// The phases of `plan`, in the order they run.
pub(crate) fn schedule(plan: &Plan) -> Vec<Phase<'_>> {
    vec![
        Phase::BaseImages(&plan.base_images),
        Phase::Contexts,
        Phase::Compile(plan.cargo_builds()),
        Phase::Stage,
        Phase::Images(plan.platforms.iter().map(|p| &p.image).collect()),
        Phase::Pushes(plan.pushes().collect()),
        Phase::Publishes(&plan.publishes),
        Phase::Sign(plan.pushes().collect(), &plan.publishes),
    ]
}
