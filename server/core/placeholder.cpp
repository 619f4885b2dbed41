namespace cg { int core_placeholder = 0; }
