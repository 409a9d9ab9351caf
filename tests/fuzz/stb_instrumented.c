/* stb_image and stb_image_resize compiled into a fuzz harness, so the
   sanitizers and libFuzzer's coverage see inside the decoders (the system's
   libstb is not instrumented). The executable's definitions take precedence
   over the shared library's. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_resize.h>
