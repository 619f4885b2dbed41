namespace cg::api { int api_placeholder = 0; }
