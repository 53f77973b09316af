"""GetSystemInfo and SystemPrune: what evactors knows about the host and prunes from containerd."""
