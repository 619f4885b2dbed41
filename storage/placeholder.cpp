namespace cg::storage { int p = 0; }
