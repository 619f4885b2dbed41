# The libFuzzer targets, shared by tests/fuzz/CMakeLists.txt and tests/fuzz/standalone/CMakeLists.txt.
# Needs clang, CHATGROUP_ROOT and EXPAT::EXPAT. The code under test is compiled into each target with the fuzzer's
# coverage instrumentation and the sanitizers, rather than linked from the uninstrumented cg_xml library.
file(GLOB CG_FUZZ_XML_SOURCES CONFIGURE_DEPENDS ${CHATGROUP_ROOT}/server/xml/*.cpp)
set(CG_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

add_executable(fuzz_stream_parser ${CMAKE_CURRENT_LIST_DIR}/fuzz_stream_parser.cpp ${CG_FUZZ_XML_SOURCES})
target_include_directories(fuzz_stream_parser PRIVATE ${CHATGROUP_ROOT})
target_compile_options(fuzz_stream_parser PRIVATE ${CG_FUZZ_FLAGS} -g)
target_link_options(fuzz_stream_parser PRIVATE ${CG_FUZZ_FLAGS})
target_link_libraries(fuzz_stream_parser PRIVATE EXPAT::EXPAT)
