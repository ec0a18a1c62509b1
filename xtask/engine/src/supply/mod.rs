//! The supply chain beside each image: SBOMs exact for its platform, and the in-toto
//! statements that attach them to an OCI index the way BuildKit lays attestations out.

pub mod attest;
pub mod auditable;
pub mod provenance;
pub mod sbom;
