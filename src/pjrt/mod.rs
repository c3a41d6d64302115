//! PJRT C API runtime: load a plugin, create a client, compile HLO, move
//! buffers, execute on R replicas. The only module with `unsafe` code.
