//! The backends, peers behind one [`crate::exec::Backend`] seam: `docker` builds in an
//! engine (classic or BuildKit, any context or builder) and publishes with
//! `docker manifest` or `buildx imagetools`; `oci` assembles images itself and publishes
//! over the registry API with no engine at all.

pub mod docker;
pub mod oci;
