namespace cg::config { int p = 0; }
