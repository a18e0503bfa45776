//! Loom models of the shmcast-core protocols (see the loom issue).
