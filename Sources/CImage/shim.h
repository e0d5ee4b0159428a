// libjpeg-turbo (TurboJPEG API) and libpng, for decoding and encoding face images.
#ifndef KDTRAIN_CIMAGE_SHIM_H
#define KDTRAIN_CIMAGE_SHIM_H
#include <turbojpeg.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

// PNG decoding with libpng's low-level API, reading the samples as stored: no gamma correction (gAMA,
// sRGB, iCCP and cHRM chunks are ignored), 16-bit samples keep their high byte, alpha (an alpha channel
// or tRNS) is dropped without compositing, palettes and 1/2/4-bit gray are expanded to 8-bit RGB.
// libpng reports errors by longjmp, which Swift cannot catch, so the setjmp lives here in C.

typedef struct {
    const unsigned char *data;
    size_t size, pos;
    char message[200];
} kd_png_source;

static inline void kd_png_on_error(png_structp png, png_const_charp msg) {
    kd_png_source *s = (kd_png_source *)png_get_error_ptr(png);
    if (s) snprintf(s->message, sizeof s->message, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static inline void kd_png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static inline void kd_png_on_read(png_structp png, png_bytep out, size_t n) {
    kd_png_source *s = (kd_png_source *)png_get_io_ptr(png);
    if (n > s->size - s->pos) png_error(png, "file is truncated");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

/// Decodes the PNG in `data` to 8-bit interleaved RGB. With `out` NULL only the header is read and
/// `*width`, `*height` are set (the caller checks them before allocating `out`). With `out`, the
/// image is written there (`out_size` must be at least width * height * 3). Returns 0 on success,
/// otherwise 1 with a NUL-terminated reason in `message`.
static inline int kd_png_decode(const unsigned char *data, size_t size, unsigned char *out, size_t out_size,
                                unsigned int *width, unsigned int *height, char *message, size_t message_size) {
    kd_png_source src;
    src.data = data; src.size = size; src.pos = 0; src.message[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, kd_png_on_error, kd_png_on_warning);
    if (!png) { snprintf(message, message_size, "cannot initialize libpng"); return 1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(message, message_size, "cannot initialize libpng"); return 1; }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(message, message_size, "%s", src.message[0] ? src.message : "libpng error");
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    png_set_read_fn(png, &src, kd_png_on_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    *width = (unsigned int)w; *height = (unsigned int)h;
    if (!out) { png_destroy_read_struct(&png, &info, NULL); return 0; }
    if (out_size / 3 / (w ? w : 1) < h) png_error(png, "output buffer too small");
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 || png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unexpected sample layout after conversion to 8-bit RGB");
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, out + (size_t)y * w * 3, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
#endif
