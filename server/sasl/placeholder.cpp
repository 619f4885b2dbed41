namespace cg::sasl { int p = 0; }
