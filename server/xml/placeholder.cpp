namespace cg::xml { int p = 0; }
