//! The supply chain beside each image: SBOMs exact for its platform, the in-toto
//! statements that attach them to an OCI index the way BuildKit lays attestations out, and
//! cosign's signatures.

pub mod attest;
pub mod auditable;
pub mod cosign;
pub mod provenance;
pub mod sbom;
