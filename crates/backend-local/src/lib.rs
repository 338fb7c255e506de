//! Runs gantry jobs as host processes, each in its own process group.
