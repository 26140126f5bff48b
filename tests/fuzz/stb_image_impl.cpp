// stb_image's implementation, compiled into fuzz_image with the fuzzer's
// instrumentation (see fuzz_image.cpp). Same header as Debian's libstb.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
