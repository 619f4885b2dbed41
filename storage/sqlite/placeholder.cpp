namespace cg::storage { int p2 = 0; }
