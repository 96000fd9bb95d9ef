/* vp8.c - the lossy WebP bitstream: a VP8 key frame (RFC 6386), decoded to
   RGB exactly as libwebp 1.2.4 does it for WebPDecodeRGB and dwebp: the same
   boolean decoder (including how it runs past the end of a partition), the
   same integer transforms, intra predictors and loop filters, then 4:2:0 ->
   RGB with libwebp's "fancy" chroma upsampling and its fixed-point
   conversion. Interframes do not occur in WebP and are refused.

   The frame is decoded one row of macroblocks at a time: modes for the row
   from the first partition, then per macroblock its tokens, reconstruction
   and loop filter; rows of pixels are converted to RGB as soon as neither
   the filter nor the upsampler can change them. Working memory is a few
   rows of macroblocks. */
#include "../platform/platform.h"
#include "decoders.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
   Data */

enum {
    /* 4x4 luma modes; the 16x16 and chroma modes use the first four values */
    B_DC,
    B_TM,
    B_VE,
    B_HE,
    B_RD,
    B_VR,
    B_LD,
    B_VL,
    B_HD,
    B_HU,
    /* DC prediction at the frame's edges */
    DC_NOTOP,
    DC_NOLEFT,
    DC_NOTOPLEFT
};

#define WS 32 /* stride of the reconstruction workspace */

typedef struct {
    const unsigned char *p;   /* next byte to load */
    const unsigned char *end; /* end of the partition */
    uint64_t value;           /* loaded bits; the window is at bit `bits` */
    int bits;                 /* bits loaded below the 8-bit window (< 0: load more) */
    uint32_t range;           /* range - 1 */
    int eof;                  /* ran past the end: zeros were fed in */
} boolreader;

typedef struct {
    unsigned char limit;  /* edge limit (0: not filtered) */
    unsigned char ilevel; /* interior limit */
    unsigned char hev;    /* high edge variance threshold */
    unsigned char inner;  /* also filter the edges inside the macroblock */
} filterinfo;

typedef struct {
    unsigned char segment; /* 0..3 */
    unsigned char skip;    /* no coefficients coded */
    unsigned char i4x4;    /* luma predicted per 4x4 block */
    unsigned char uvmode;  /* chroma mode */
    unsigned char ymode[16]; /* luma mode (one for 16x16, else per block) */
} mbmodes;

typedef struct {
    int y1[2]; /* luma DC, AC dequantization factors */
    int y2[2]; /* second-order (WHT) DC, AC */
    int uv[2]; /* chroma DC, AC */
} quant;

typedef struct {
    int mbw;                 /* width in macroblocks */
    int mbh;                 /* height in macroblocks */
    int width;               /* frame width */
    int height;              /* frame height */
    boolreader br;           /* first partition: headers, then modes */
    boolreader parts[8];     /* token partitions */
    int nparts;              /* their number: 1, 2, 4 or 8 */
    int use_segment;         /* segmentation on */
    int update_map;          /* each macroblock codes its segment */
    unsigned char seg_prob[3]; /* probabilities of the segment tree */
    int filter_type;         /* loop filter: 0 none, 1 simple, 2 normal */
    filterinfo fstr[4][2];   /* filter strengths by segment and i4x4 */
    quant q[4];              /* dequantization by segment */
    unsigned char coef[4][8][3][11]; /* token probabilities by block type, band, context */
    int use_skip;            /* macroblocks code a "no coefficients" flag */
    int skip_prob;           /* its probability */
    unsigned char *intra_t;  /* per column, 4 each: modes of the 4x4 blocks above */
    unsigned char intra_l[4]; /* modes of the 4x4 blocks to the left */
    unsigned char *nz_t;     /* per column: which blocks above had coefficients */
    unsigned char nz_l;      /* the same for the blocks to the left */
    unsigned char *nzdc_t;   /* per column: the Y2 block above had coefficients */
    unsigned char nzdc_l;    /* the same to the left */
    mbmodes *modes;          /* the current row's modes, per column */
    unsigned char *top_y;    /* unfiltered bottom luma row of the row above */
    unsigned char *top_u;    /* the same for U */
    unsigned char *top_v;    /* the same for V */
    unsigned char *cy;       /* luma rows: 16 kept from the previous macroblock row, then 16 */
    unsigned char *cu;       /* U rows: 8 kept, then 8 */
    unsigned char *cv;       /* V rows: the same */
    size_t ys;               /* stride of cy */
    size_t uvs;              /* stride of cu, cv */
    unsigned char ws[35 * WS]; /* workspace: Y (17 rows), U, V (9), each with a row above */
    short coeffs[384];       /* the current macroblock's dequantized coefficients */
    unsigned char *up_u;     /* one row of upsampled U */
    unsigned char *up_v;     /* one row of upsampled V */
    unsigned char *planar;   /* one row of R, G, B planes */
    int next_row;            /* next row of pixels to convert to RGB */
    unsigned char *mem;      /* the one allocation behind the pointers above */
} vp8dec;

/* Token probabilities, defaults and update probabilities: RFC 6386, 13.5 and
   13.4 (default_coeff_probs, coeff_update_probs). */
static const unsigned char coeff_default[4][8][3][11] = {
    {
        {
            {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
            {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
            {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128}
        },
        {
            {253, 136, 254, 255, 228, 219, 128, 128, 128, 128, 128},
            {189, 129, 242, 255, 227, 213, 255, 219, 128, 128, 128},
            {106, 126, 227, 252, 214, 209, 255, 255, 128, 128, 128}
        },
        {
            {1, 98, 248, 255, 236, 226, 255, 255, 128, 128, 128},
            {181, 133, 238, 254, 221, 234, 255, 154, 128, 128, 128},
            {78, 134, 202, 247, 198, 180, 255, 219, 128, 128, 128}
        },
        {
            {1, 185, 249, 255, 243, 255, 128, 128, 128, 128, 128},
            {184, 150, 247, 255, 236, 224, 128, 128, 128, 128, 128},
            {77, 110, 216, 255, 236, 230, 128, 128, 128, 128, 128}
        },
        {
            {1, 101, 251, 255, 241, 255, 128, 128, 128, 128, 128},
            {170, 139, 241, 252, 236, 209, 255, 255, 128, 128, 128},
            {37, 116, 196, 243, 228, 255, 255, 255, 128, 128, 128}
        },
        {
            {1, 204, 254, 255, 245, 255, 128, 128, 128, 128, 128},
            {207, 160, 250, 255, 238, 128, 128, 128, 128, 128, 128},
            {102, 103, 231, 255, 211, 171, 128, 128, 128, 128, 128}
        },
        {
            {1, 152, 252, 255, 240, 255, 128, 128, 128, 128, 128},
            {177, 135, 243, 255, 234, 225, 128, 128, 128, 128, 128},
            {80, 129, 211, 255, 194, 224, 128, 128, 128, 128, 128}
        },
        {
            {1, 1, 255, 128, 128, 128, 128, 128, 128, 128, 128},
            {246, 1, 255, 128, 128, 128, 128, 128, 128, 128, 128},
            {255, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128}
        }
    },
    {
        {
            {198, 35, 237, 223, 193, 187, 162, 160, 145, 155, 62},
            {131, 45, 198, 221, 172, 176, 220, 157, 252, 221, 1},
            {68, 47, 146, 208, 149, 167, 221, 162, 255, 223, 128}
        },
        {
            {1, 149, 241, 255, 221, 224, 255, 255, 128, 128, 128},
            {184, 141, 234, 253, 222, 220, 255, 199, 128, 128, 128},
            {81, 99, 181, 242, 176, 190, 249, 202, 255, 255, 128}
        },
        {
            {1, 129, 232, 253, 214, 197, 242, 196, 255, 255, 128},
            {99, 121, 210, 250, 201, 198, 255, 202, 128, 128, 128},
            {23, 91, 163, 242, 170, 187, 247, 210, 255, 255, 128}
        },
        {
            {1, 200, 246, 255, 234, 255, 128, 128, 128, 128, 128},
            {109, 178, 241, 255, 231, 245, 255, 255, 128, 128, 128},
            {44, 130, 201, 253, 205, 192, 255, 255, 128, 128, 128}
        },
        {
            {1, 132, 239, 251, 219, 209, 255, 165, 128, 128, 128},
            {94, 136, 225, 251, 218, 190, 255, 255, 128, 128, 128},
            {22, 100, 174, 245, 186, 161, 255, 199, 128, 128, 128}
        },
        {
            {1, 182, 249, 255, 232, 235, 128, 128, 128, 128, 128},
            {124, 143, 241, 255, 227, 234, 128, 128, 128, 128, 128},
            {35, 77, 181, 251, 193, 211, 255, 205, 128, 128, 128}
        },
        {
            {1, 157, 247, 255, 236, 231, 255, 255, 128, 128, 128},
            {121, 141, 235, 255, 225, 227, 255, 255, 128, 128, 128},
            {45, 99, 188, 251, 195, 217, 255, 224, 128, 128, 128}
        },
        {
            {1, 1, 251, 255, 213, 255, 128, 128, 128, 128, 128},
            {203, 1, 248, 255, 255, 128, 128, 128, 128, 128, 128},
            {137, 1, 177, 255, 224, 255, 128, 128, 128, 128, 128}
        }
    },
    {
        {
            {253, 9, 248, 251, 207, 208, 255, 192, 128, 128, 128},
            {175, 13, 224, 243, 193, 185, 249, 198, 255, 255, 128},
            {73, 17, 171, 221, 161, 179, 236, 167, 255, 234, 128}
        },
        {
            {1, 95, 247, 253, 212, 183, 255, 255, 128, 128, 128},
            {239, 90, 244, 250, 211, 209, 255, 255, 128, 128, 128},
            {155, 77, 195, 248, 188, 195, 255, 255, 128, 128, 128}
        },
        {
            {1, 24, 239, 251, 218, 219, 255, 205, 128, 128, 128},
            {201, 51, 219, 255, 196, 186, 128, 128, 128, 128, 128},
            {69, 46, 190, 239, 201, 218, 255, 228, 128, 128, 128}
        },
        {
            {1, 191, 251, 255, 255, 128, 128, 128, 128, 128, 128},
            {223, 165, 249, 255, 213, 255, 128, 128, 128, 128, 128},
            {141, 124, 248, 255, 255, 128, 128, 128, 128, 128, 128}
        },
        {
            {1, 16, 248, 255, 255, 128, 128, 128, 128, 128, 128},
            {190, 36, 230, 255, 236, 255, 128, 128, 128, 128, 128},
            {149, 1, 255, 128, 128, 128, 128, 128, 128, 128, 128}
        },
        {
            {1, 226, 255, 128, 128, 128, 128, 128, 128, 128, 128},
            {247, 192, 255, 128, 128, 128, 128, 128, 128, 128, 128},
            {240, 128, 255, 128, 128, 128, 128, 128, 128, 128, 128}
        },
        {
            {1, 134, 252, 255, 255, 128, 128, 128, 128, 128, 128},
            {213, 62, 250, 255, 255, 128, 128, 128, 128, 128, 128},
            {55, 93, 255, 128, 128, 128, 128, 128, 128, 128, 128}
        },
        {
            {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
            {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
            {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128}
        }
    },
    {
        {
            {202, 24, 213, 235, 186, 191, 220, 160, 240, 175, 255},
            {126, 38, 182, 232, 169, 184, 228, 174, 255, 187, 128},
            {61, 46, 138, 219, 151, 178, 240, 170, 255, 216, 128}
        },
        {
            {1, 112, 230, 250, 199, 191, 247, 159, 255, 255, 128},
            {166, 109, 228, 252, 211, 215, 255, 174, 128, 128, 128},
            {39, 77, 162, 232, 172, 180, 245, 178, 255, 255, 128}
        },
        {
            {1, 52, 220, 246, 198, 199, 249, 220, 255, 255, 128},
            {124, 74, 191, 243, 183, 193, 250, 221, 255, 255, 128},
            {24, 71, 130, 219, 154, 170, 243, 182, 255, 255, 128}
        },
        {
            {1, 182, 225, 249, 219, 240, 255, 224, 128, 128, 128},
            {149, 150, 226, 252, 216, 205, 255, 171, 128, 128, 128},
            {28, 108, 170, 242, 183, 194, 254, 223, 255, 255, 128}
        },
        {
            {1, 81, 230, 252, 204, 203, 255, 192, 128, 128, 128},
            {123, 102, 209, 247, 188, 196, 255, 233, 128, 128, 128},
            {20, 95, 153, 243, 164, 173, 255, 203, 128, 128, 128}
        },
        {
            {1, 222, 248, 255, 216, 213, 128, 128, 128, 128, 128},
            {168, 175, 246, 252, 235, 205, 255, 255, 128, 128, 128},
            {47, 116, 215, 255, 211, 212, 255, 255, 128, 128, 128}
        },
        {
            {1, 121, 236, 253, 212, 214, 255, 255, 128, 128, 128},
            {141, 84, 213, 252, 201, 202, 255, 219, 128, 128, 128},
            {42, 80, 160, 240, 162, 185, 255, 205, 128, 128, 128}
        },
        {
            {1, 1, 255, 128, 128, 128, 128, 128, 128, 128, 128},
            {244, 1, 255, 128, 128, 128, 128, 128, 128, 128, 128},
            {238, 1, 255, 128, 128, 128, 128, 128, 128, 128, 128}
        }
    }
};
static const unsigned char coeff_update[4][8][3][11] = {
    {
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {176, 246, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {223, 241, 252, 255, 255, 255, 255, 255, 255, 255, 255},
            {249, 253, 253, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 244, 252, 255, 255, 255, 255, 255, 255, 255, 255},
            {234, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {253, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 246, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {239, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 248, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {251, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {251, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 254, 253, 255, 254, 255, 255, 255, 255, 255, 255},
            {250, 255, 254, 255, 254, 255, 255, 255, 255, 255, 255},
            {254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        }
    },
    {
        {
            {217, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {225, 252, 241, 253, 255, 255, 254, 255, 255, 255, 255},
            {234, 250, 241, 250, 253, 255, 253, 254, 255, 255, 255}
        },
        {
            {255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {223, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {238, 253, 254, 254, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 248, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {249, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 253, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {247, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {252, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {253, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 254, 253, 255, 255, 255, 255, 255, 255, 255, 255},
            {250, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        }
    },
    {
        {
            {186, 251, 250, 255, 255, 255, 255, 255, 255, 255, 255},
            {234, 251, 244, 254, 255, 255, 255, 255, 255, 255, 255},
            {251, 251, 243, 253, 254, 255, 254, 255, 255, 255, 255}
        },
        {
            {255, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {236, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {251, 253, 253, 254, 254, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        }
    },
    {
        {
            {248, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {250, 254, 252, 254, 255, 255, 255, 255, 255, 255, 255},
            {248, 254, 249, 253, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 253, 253, 255, 255, 255, 255, 255, 255, 255, 255},
            {246, 253, 253, 255, 255, 255, 255, 255, 255, 255, 255},
            {252, 254, 251, 254, 254, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 254, 252, 255, 255, 255, 255, 255, 255, 255, 255},
            {248, 254, 253, 255, 255, 255, 255, 255, 255, 255, 255},
            {253, 255, 254, 254, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 251, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {245, 251, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {253, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 251, 253, 255, 255, 255, 255, 255, 255, 255, 255},
            {252, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 252, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {249, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 253, 255, 255, 255, 255, 255, 255, 255, 255},
            {250, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        },
        {
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
            {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
        }
    }
};

/* Probabilities of the 4x4 luma modes given the modes above and to the
   left: RFC 6386, 11.5 (kf_bmode_probs), its modes in this file's order. */
static const unsigned char bmode_prob[10][10][9] = {
    {
        {231, 120, 48, 89, 115, 113, 120, 152, 112},
        {152, 179, 64, 126, 170, 118, 46, 70, 95},
        {175, 69, 143, 80, 85, 82, 72, 155, 103},
        {56, 58, 10, 171, 218, 189, 17, 13, 152},
        {114, 26, 17, 163, 44, 195, 21, 10, 173},
        {121, 24, 80, 195, 26, 62, 44, 64, 85},
        {144, 71, 10, 38, 171, 213, 144, 34, 26},
        {170, 46, 55, 19, 136, 160, 33, 206, 71},
        {63, 20, 8, 114, 114, 208, 12, 9, 226},
        {81, 40, 11, 96, 182, 84, 29, 16, 36}
    },
    {
        {134, 183, 89, 137, 98, 101, 106, 165, 148},
        {72, 187, 100, 130, 157, 111, 32, 75, 80},
        {66, 102, 167, 99, 74, 62, 40, 234, 128},
        {41, 53, 9, 178, 241, 141, 26, 8, 107},
        {74, 43, 26, 146, 73, 166, 49, 23, 157},
        {65, 38, 105, 160, 51, 52, 31, 115, 128},
        {104, 79, 12, 27, 217, 255, 87, 17, 7},
        {87, 68, 71, 44, 114, 51, 15, 186, 23},
        {47, 41, 14, 110, 182, 183, 21, 17, 194},
        {66, 45, 25, 102, 197, 189, 23, 18, 22}
    },
    {
        {88, 88, 147, 150, 42, 46, 45, 196, 205},
        {43, 97, 183, 117, 85, 38, 35, 179, 61},
        {39, 53, 200, 87, 26, 21, 43, 232, 171},
        {56, 34, 51, 104, 114, 102, 29, 93, 77},
        {39, 28, 85, 171, 58, 165, 90, 98, 64},
        {34, 22, 116, 206, 23, 34, 43, 166, 73},
        {107, 54, 32, 26, 51, 1, 81, 43, 31},
        {68, 25, 106, 22, 64, 171, 36, 225, 114},
        {34, 19, 21, 102, 132, 188, 16, 76, 124},
        {62, 18, 78, 95, 85, 57, 50, 48, 51}
    },
    {
        {193, 101, 35, 159, 215, 111, 89, 46, 111},
        {60, 148, 31, 172, 219, 228, 21, 18, 111},
        {112, 113, 77, 85, 179, 255, 38, 120, 114},
        {40, 42, 1, 196, 245, 209, 10, 25, 109},
        {88, 43, 29, 140, 166, 213, 37, 43, 154},
        {61, 63, 30, 155, 67, 45, 68, 1, 209},
        {100, 80, 8, 43, 154, 1, 51, 26, 71},
        {142, 78, 78, 16, 255, 128, 34, 197, 171},
        {41, 40, 5, 102, 211, 183, 4, 1, 221},
        {51, 50, 17, 168, 209, 192, 23, 25, 82}
    },
    {
        {138, 31, 36, 171, 27, 166, 38, 44, 229},
        {67, 87, 58, 169, 82, 115, 26, 59, 179},
        {63, 59, 90, 180, 59, 166, 93, 73, 154},
        {40, 40, 21, 116, 143, 209, 34, 39, 175},
        {47, 15, 16, 183, 34, 223, 49, 45, 183},
        {46, 17, 33, 183, 6, 98, 15, 32, 183},
        {57, 46, 22, 24, 128, 1, 54, 17, 37},
        {65, 32, 73, 115, 28, 128, 23, 128, 205},
        {40, 3, 9, 115, 51, 192, 18, 6, 223},
        {87, 37, 9, 115, 59, 77, 64, 21, 47}
    },
    {
        {104, 55, 44, 218, 9, 54, 53, 130, 226},
        {64, 90, 70, 205, 40, 41, 23, 26, 57},
        {54, 57, 112, 184, 5, 41, 38, 166, 213},
        {30, 34, 26, 133, 152, 116, 10, 32, 134},
        {39, 19, 53, 221, 26, 114, 32, 73, 255},
        {31, 9, 65, 234, 2, 15, 1, 118, 73},
        {75, 32, 12, 51, 192, 255, 160, 43, 51},
        {88, 31, 35, 67, 102, 85, 55, 186, 85},
        {56, 21, 23, 111, 59, 205, 45, 37, 192},
        {55, 38, 70, 124, 73, 102, 1, 34, 98}
    },
    {
        {125, 98, 42, 88, 104, 85, 117, 175, 82},
        {95, 84, 53, 89, 128, 100, 113, 101, 45},
        {75, 79, 123, 47, 51, 128, 81, 171, 1},
        {57, 17, 5, 71, 102, 57, 53, 41, 49},
        {38, 33, 13, 121, 57, 73, 26, 1, 85},
        {41, 10, 67, 138, 77, 110, 90, 47, 114},
        {115, 21, 2, 10, 102, 255, 166, 23, 6},
        {101, 29, 16, 10, 85, 128, 101, 196, 26},
        {57, 18, 10, 102, 102, 213, 34, 20, 43},
        {117, 20, 15, 36, 163, 128, 68, 1, 26}
    },
    {
        {102, 61, 71, 37, 34, 53, 31, 243, 192},
        {69, 60, 71, 38, 73, 119, 28, 222, 37},
        {68, 45, 128, 34, 1, 47, 11, 245, 171},
        {62, 17, 19, 70, 146, 85, 55, 62, 70},
        {37, 43, 37, 154, 100, 163, 85, 160, 1},
        {63, 9, 92, 136, 28, 64, 32, 201, 85},
        {75, 15, 9, 9, 64, 255, 184, 119, 16},
        {86, 6, 28, 5, 64, 255, 25, 248, 1},
        {56, 8, 17, 132, 137, 255, 55, 116, 128},
        {58, 15, 20, 82, 135, 57, 26, 121, 40}
    },
    {
        {164, 50, 31, 137, 154, 133, 25, 35, 218},
        {51, 103, 44, 131, 131, 123, 31, 6, 158},
        {86, 40, 64, 135, 148, 224, 45, 183, 128},
        {22, 26, 17, 131, 240, 154, 14, 1, 209},
        {45, 16, 21, 91, 64, 222, 7, 1, 197},
        {56, 21, 39, 155, 60, 138, 23, 102, 213},
        {83, 12, 13, 54, 192, 255, 68, 47, 28},
        {85, 26, 85, 85, 128, 128, 32, 146, 171},
        {18, 11, 7, 63, 144, 171, 4, 4, 246},
        {35, 27, 10, 146, 174, 171, 12, 26, 128}
    },
    {
        {190, 80, 35, 99, 180, 80, 126, 54, 45},
        {85, 126, 47, 87, 176, 51, 41, 20, 32},
        {101, 75, 128, 139, 118, 146, 116, 128, 85},
        {56, 41, 15, 176, 236, 85, 37, 9, 62},
        {71, 30, 17, 119, 118, 255, 17, 18, 138},
        {101, 38, 60, 138, 55, 70, 43, 26, 142},
        {146, 36, 19, 30, 171, 255, 97, 27, 20},
        {138, 45, 61, 62, 219, 1, 81, 188, 64},
        {32, 41, 20, 117, 151, 142, 20, 21, 163},
        {112, 19, 12, 61, 195, 128, 48, 4, 24}
    }
};

/* Dequantization factors by quantizer index: RFC 6386, 14.1 (dc_qlookup,
   ac_qlookup). */
static const unsigned char dc_quant[128] = {
    4, 5, 6, 7, 8, 9, 10, 10, 11, 12, 13, 14, 15, 16, 17, 17,
    18, 19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 25, 25, 26, 27, 28,
    29, 30, 31, 32, 33, 34, 35, 36, 37, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58,
    59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74,
    75, 76, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    91, 93, 95, 96, 98, 100, 101, 102, 104, 106, 108, 110, 112, 114, 116, 118,
    122, 124, 126, 128, 130, 132, 134, 136, 138, 140, 143, 145, 148, 151, 154, 157,
};
static const unsigned short ac_quant[128] = {
    4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76,
    78, 80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102, 104, 106, 108,
    110, 112, 114, 116, 119, 122, 125, 128, 131, 134, 137, 140, 143, 146, 149, 152,
    155, 158, 161, 164, 167, 170, 173, 177, 181, 185, 189, 193, 197, 201, 205, 209,
    213, 217, 221, 225, 229, 234, 239, 245, 249, 254, 259, 264, 269, 274, 279, 284,
};

/* Coefficient position -> band, with a 17th entry for "past the end"; the
   zigzag scan; the extra-bits probabilities of the large token categories
   3..6 (RFC 6386, 13.2). */
static const unsigned char band_of[17] = {0, 1, 2, 3, 6, 4, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 0};
static const unsigned char zigzag[16] = {0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15};
static const unsigned char cat3[] = {173, 148, 140, 0};
static const unsigned char cat4[] = {176, 155, 140, 135, 0};
static const unsigned char cat5[] = {180, 157, 141, 134, 130, 0};
static const unsigned char cat6[] = {254, 254, 243, 230, 196, 177, 153, 140, 133, 130, 129, 0};
static const unsigned char *const cat_probs[4] = {cat3, cat4, cat5, cat6};

/* 7 - floor(log2(r)): how far the boolean decoder's range r (1..255) must
   be shifted to get back to 128..255. */
static const unsigned char norm_shift[256] = {
    0, 7, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static void br_init(boolreader *br, const unsigned char *start, size_t size);
static int br_bit(boolreader *br, int prob);
static int br_signed(boolreader *br, int v);
static int br_value(boolreader *br, int nbits);
static int br_svalue(boolreader *br, int nbits);
static int parse_headers(vp8dec *d, const unsigned char *data, size_t size, char *err);
static int decode_frame(vp8dec *d, unsigned char *rgb, size_t stride, char *err);

/* ------------------------------------------------------------------------
   Entry points */

/* The 10 bytes every key frame starts with: frame tag, start code, size.
   Refuses what libwebp's VP8GetInfo refuses. */
static int frame_tag(const unsigned char *data, size_t size, int *w, int *h, char *err)
{
    uint32_t tag;
    if (size < 10) return clip_error(err, "clip: WebP: VP8: truncated frame header");
    tag = data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16;
    if (data[3] != 0x9d || data[4] != 0x01 || data[5] != 0x2a)
        return clip_error(err, "clip: WebP: VP8: bad start code");
    if (tag & 1) return clip_error(err, "clip: WebP: VP8: not a key frame (interframes are not supported)");
    if (((tag >> 1) & 7) > 3) return clip_error(err, "clip: WebP: VP8: unknown profile %u", (unsigned)((tag >> 1) & 7));
    if (!((tag >> 4) & 1)) return clip_error(err, "clip: WebP: VP8: frame is not displayable");
    if ((tag >> 5) >= size) return clip_error(err, "clip: WebP: VP8: first partition larger than the chunk");
    *w = (data[6] | data[7] << 8) & 0x3fff;
    *h = (data[8] | data[9] << 8) & 0x3fff;
    if (*w == 0 || *h == 0) return clip_error(err, "clip: WebP: VP8: zero width or height");
    return 0;
}

int clip_vp8_size(const unsigned char *data, size_t size, int *w, int *h, char *err)
{
    *w = *h = 0;
    return frame_tag(data, size, w, h, err);
}

int clip_vp8_decode(const unsigned char *data, size_t size, int w, int h, unsigned char *rgb, size_t stride,
                    char *err)
{
    vp8dec *d;
    int fw = 0, fh = 0, ret;
    if (frame_tag(data, size, &fw, &fh, err)) return -1;
    if (fw != w || fh != h) return clip_error(err, "clip: WebP: VP8: frame is %dx%d, not %dx%d", fw, fh, w, h);
    if (stride < (size_t)w * 3) return clip_error(err, "clip: WebP: VP8: output rows too short");
    d = (vp8dec *)clip_calloc(1, sizeof *d);
    if (!d) return clip_error(err, "clip: WebP: VP8: out of memory");
    d->width = w;
    d->height = h;
    d->mbw = (w + 15) >> 4;
    d->mbh = (h + 15) >> 4;
    ret = parse_headers(d, data, size, err);
    if (!ret) ret = decode_frame(d, rgb, stride, err);
    clip_free(d->mem);
    clip_free(d);
    return ret;
}

/* ------------------------------------------------------------------------
   Frame header: segmentation, loop filter, partitions, quantizers,
   token probabilities (RFC 6386, 9.2 - 9.11) */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int parse_headers(vp8dec *d, const unsigned char *data, size_t size, char *err)
{
    boolreader *br = &d->br;
    size_t first = (data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16) >> 5, left = size - 10, n, p;
    const unsigned char *buf = data + 10;
    int absolute = 1, seg_q[4] = {0, 0, 0, 0}, seg_f[4] = {0, 0, 0, 0};
    int simple, level, sharpness, ref_delta0 = 0, mode_delta0 = 0, base_q, dq[5], s, t, b, c, i;

    if (first > left) return clip_error(err, "clip: WebP: VP8: truncated first partition");
    br_init(br, buf, first);
    buf += first;
    left -= first;
    br_bit(br, 128); /* colour space and clamping type: no effect on decoding */
    br_bit(br, 128);

    d->seg_prob[0] = d->seg_prob[1] = d->seg_prob[2] = 255;
    d->use_segment = br_bit(br, 128);
    if (d->use_segment) {
        d->update_map = br_bit(br, 128);
        if (br_bit(br, 128)) { /* segment data follows */
            absolute = br_bit(br, 128);
            for (s = 0; s < 4; s++) seg_q[s] = br_bit(br, 128) ? br_svalue(br, 7) : 0;
            for (s = 0; s < 4; s++) seg_f[s] = br_bit(br, 128) ? br_svalue(br, 6) : 0;
        }
        if (d->update_map)
            for (s = 0; s < 3; s++) d->seg_prob[s] = (unsigned char)(br_bit(br, 128) ? br_value(br, 8) : 255);
    }
    if (br->eof) return clip_error(err, "clip: WebP: VP8: truncated segment header");

    simple = br_bit(br, 128);
    level = br_value(br, 6);
    sharpness = br_value(br, 3);
    if (br_bit(br, 128) && br_bit(br, 128)) { /* loop filter deltas, and an update of them */
        /* only the intra-frame deltas matter: reference frame 0 and mode 0 (B_PRED) */
        for (i = 0; i < 4; i++)
            if (br_bit(br, 128)) {
                int v = br_svalue(br, 6);
                if (i == 0) ref_delta0 = v;
            }
        for (i = 0; i < 4; i++)
            if (br_bit(br, 128)) {
                int v = br_svalue(br, 6);
                if (i == 0) mode_delta0 = v;
            }
    }
    d->filter_type = level == 0 ? 0 : simple ? 1 : 2;
    if (br->eof) return clip_error(err, "clip: WebP: VP8: truncated filter header");

    /* token partitions: all but the last have a 3-byte size; sizes past the
       end are cut, as libwebp does, but the last one must not be empty */
    d->nparts = 1 << br_value(br, 2);
    n = (size_t)d->nparts - 1;
    if (left < 3 * n) return clip_error(err, "clip: WebP: VP8: truncated partition sizes");
    {
        const unsigned char *sz = buf, *start = buf + 3 * n;
        size_t rest = left - 3 * n;
        for (p = 0; p < n; p++, sz += 3) {
            size_t psize = sz[0] | (size_t)sz[1] << 8 | (size_t)sz[2] << 16;
            if (psize > rest) psize = rest;
            br_init(&d->parts[p], start, psize);
            start += psize;
            rest -= psize;
        }
        if (rest == 0) return clip_error(err, "clip: WebP: VP8: truncated token partitions");
        br_init(&d->parts[n], start, rest);
    }

    base_q = br_value(br, 7);
    for (i = 0; i < 5; i++) dq[i] = br_bit(br, 128) ? br_svalue(br, 4) : 0;
    for (s = 0; s < 4; s++) {
        quant *m = &d->q[s];
        int q = d->use_segment ? seg_q[s] + (absolute ? 0 : base_q) : base_q;
        m->y1[0] = dc_quant[clampi(q + dq[0], 0, 127)];
        m->y1[1] = ac_quant[clampi(q, 0, 127)];
        m->y2[0] = dc_quant[clampi(q + dq[1], 0, 127)] * 2;
        m->y2[1] = ac_quant[clampi(q + dq[2], 0, 127)] * 101581 >> 16; /* x * 155 / 100 */
        if (m->y2[1] < 8) m->y2[1] = 8;
        m->uv[0] = dc_quant[clampi(q + dq[3], 0, 117)];
        m->uv[1] = ac_quant[clampi(q + dq[4], 0, 127)];
    }

    br_bit(br, 128); /* "refresh entropy probabilities": irrelevant for a single frame */
    for (t = 0; t < 4; t++)
        for (b = 0; b < 8; b++)
            for (c = 0; c < 3; c++)
                for (i = 0; i < 11; i++)
                    d->coef[t][b][c][i] = (unsigned char)(br_bit(br, coeff_update[t][b][c][i]) ? br_value(br, 8)
                                                                                                 : coeff_default[t][b][c][i]);
    d->use_skip = br_bit(br, 128);
    if (d->use_skip) d->skip_prob = br_value(br, 8);
    /* (running out of the first partition here shows at the first row of modes) */

    /* filter strength by segment and by i4x4 (RFC 6386, 9.6 and 15.2) */
    if (d->filter_type)
        for (s = 0; s < 4; s++)
            for (i = 0; i < 2; i++) {
                filterinfo *f = &d->fstr[s][i];
                int lv = d->use_segment ? seg_f[s] + (absolute ? 0 : level) : level, il;
                lv += ref_delta0 + (i ? mode_delta0 : 0);
                lv = clampi(lv, 0, 63);
                f->inner = (unsigned char)i;
                if (lv == 0) continue; /* limit 0: not filtered */
                il = lv;
                if (sharpness > 0) {
                    il >>= sharpness > 4 ? 2 : 1;
                    if (il > 9 - sharpness) il = 9 - sharpness;
                }
                if (il < 1) il = 1;
                f->ilevel = (unsigned char)il;
                f->limit = (unsigned char)(2 * lv + il);
                f->hev = (unsigned char)(lv >= 40 ? 2 : lv >= 15 ? 1 : 0);
            }
    return 0;
}

/* ------------------------------------------------------------------------
   Rows of macroblocks */

static void parse_modes(vp8dec *d, int mbx);
static int parse_residuals(vp8dec *d, int mbx, boolreader *br, unsigned char code[24]);
static void reconstruct(vp8dec *d, int mbx, int mby, const unsigned char code[24]);
static void filter_mb(vp8dec *d, int mbx, int mby, const filterinfo *f);
static void emit_rows(vp8dec *d, int mby, unsigned char *rgb, size_t stride);

static int decode_frame(vp8dec *d, unsigned char *rgb, size_t stride, char *err)
{
    size_t mbw = (size_t)d->mbw, total;
    unsigned char code[24];
    unsigned char *m;
    int mbx, mby;

    /* mbw <= 1024: none of these sizes can overflow */
    d->ys = 16 * mbw;
    d->uvs = 8 * mbw;
    total = 32 * d->ys + 2 * 16 * d->uvs              /* pixel rows */
            + d->ys + 2 * d->uvs                      /* unfiltered top rows */
            + 4 * mbw + 2 * mbw                       /* mode and nonzero contexts */
            + 5 * (size_t)d->width                    /* upsampled chroma, R, G, B of one row */
            + mbw * sizeof(mbmodes);
    d->mem = m = (unsigned char *)clip_calloc(total, 1);
    if (!m) return clip_error(err, "clip: WebP: VP8: out of memory");
    d->cy = m, m += 32 * d->ys;
    d->cu = m, m += 16 * d->uvs;
    d->cv = m, m += 16 * d->uvs;
    d->top_y = m, m += d->ys;
    d->top_u = m, m += d->uvs;
    d->top_v = m, m += d->uvs;
    d->intra_t = m, m += 4 * mbw;
    d->nz_t = m, m += mbw;
    d->nzdc_t = m, m += mbw;
    d->up_u = m, m += d->width;
    d->up_v = m, m += d->width;
    d->planar = m, m += 3 * (size_t)d->width;
    d->modes = (mbmodes *)(void *)m;

    for (mby = 0; mby < d->mbh; mby++) {
        boolreader *tokens = &d->parts[mby & (d->nparts - 1)];
        memset(d->intra_l, B_DC, sizeof d->intra_l);
        for (mbx = 0; mbx < d->mbw; mbx++) parse_modes(d, mbx);
        if (d->br.eof) return clip_error(err, "clip: WebP: VP8: truncated first partition (modes)");
        d->nz_l = d->nzdc_l = 0;
        for (mbx = 0; mbx < d->mbw; mbx++) {
            const mbmodes *mb = &d->modes[mbx];
            int coded;
            if (d->use_skip && mb->skip) {
                memset(code, 0, sizeof code);
                d->nz_t[mbx] = d->nz_l = 0;
                if (!mb->i4x4) d->nzdc_t[mbx] = d->nzdc_l = 0;
                coded = 0;
            } else {
                coded = parse_residuals(d, mbx, tokens, code);
            }
            if (tokens->eof) return clip_error(err, "clip: WebP: VP8: truncated token partition");
            reconstruct(d, mbx, mby, code);
            if (d->filter_type) {
                filterinfo f = d->fstr[mb->segment][mb->i4x4];
                f.inner |= (unsigned char)coded;
                if (f.limit) filter_mb(d, mbx, mby, &f);
            }
        }
        emit_rows(d, mby, rgb, stride);
        if (mby + 1 < d->mbh) { /* the current row becomes the previous one */
            memcpy(d->cy, d->cy + 16 * d->ys, 16 * d->ys);
            memcpy(d->cu, d->cu + 8 * d->uvs, 8 * d->uvs);
            memcpy(d->cv, d->cv + 8 * d->uvs, 8 * d->uvs);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
   Modes (RFC 6386, 11.2 - 11.5) */

static int read_bmode(boolreader *br, const unsigned char *p)
{
    if (!br_bit(br, p[0])) return B_DC;
    if (!br_bit(br, p[1])) return B_TM;
    if (!br_bit(br, p[2])) return B_VE;
    if (!br_bit(br, p[3])) {
        if (!br_bit(br, p[4])) return B_HE;
        return br_bit(br, p[5]) ? B_VR : B_RD;
    }
    if (!br_bit(br, p[6])) return B_LD;
    if (!br_bit(br, p[7])) return B_VL;
    return br_bit(br, p[8]) ? B_HU : B_HD;
}

static void parse_modes(vp8dec *d, int mbx)
{
    boolreader *br = &d->br;
    mbmodes *m = &d->modes[mbx];
    unsigned char *top = d->intra_t + 4 * mbx, *left = d->intra_l;
    if (d->update_map)
        m->segment = (unsigned char)(!br_bit(br, d->seg_prob[0]) ? br_bit(br, d->seg_prob[1])
                                                                 : 2 + br_bit(br, d->seg_prob[2]));
    else
        m->segment = 0;
    m->skip = (unsigned char)(d->use_skip ? br_bit(br, d->skip_prob) : 0);
    m->i4x4 = (unsigned char)!br_bit(br, 145);
    if (!m->i4x4) {
        int mode = br_bit(br, 156) ? (br_bit(br, 128) ? B_TM : B_HE) : (br_bit(br, 163) ? B_VE : B_DC);
        m->ymode[0] = (unsigned char)mode;
        /* the 4x4 contexts of the neighbours see the 16x16 mode */
        memset(top, mode, 4);
        memset(left, mode, 4);
    } else {
        int x, y;
        for (y = 0; y < 4; y++) {
            int mode = left[y];
            for (x = 0; x < 4; x++) {
                mode = read_bmode(br, bmode_prob[top[x]][mode]);
                top[x] = (unsigned char)mode;
                m->ymode[4 * y + x] = (unsigned char)mode;
            }
            left[y] = (unsigned char)mode;
        }
    }
    m->uvmode = (unsigned char)(!br_bit(br, 142) ? B_DC : !br_bit(br, 114) ? B_VE : br_bit(br, 183) ? B_TM : B_HE);
}

/* ------------------------------------------------------------------------
   Tokens and dequantization (RFC 6386, 13) */

/* Wrap to 16 bits, as libwebp's int16_t coefficient storage does. */
static int wrap16(int v)
{
    return ((v & 0xffff) ^ 0x8000) - 0x8000;
}

/* The magnitude of a coefficient token above 1 (RFC 6386, 13.2: TWO .. dct_cat6);
   p: the probabilities of its band and context. */
static int large_value(boolreader *br, const unsigned char *p)
{
    int v;
    if (!br_bit(br, p[3])) {
        if (!br_bit(br, p[4])) return 2;
        return 3 + br_bit(br, p[5]);
    }
    if (!br_bit(br, p[6])) {
        if (!br_bit(br, p[7])) return 5 + br_bit(br, 159); /* cat1 */
        v = 7 + 2 * br_bit(br, 165);                       /* cat2 */
        return v + br_bit(br, 145);
    }
    {
        int hi = br_bit(br, p[8]), cat = 2 * hi + br_bit(br, p[9 + hi]);
        const unsigned char *t;
        v = 0;
        for (t = cat_probs[cat]; *t; t++) v += v + br_bit(br, *t);
        return v + 3 + (8 << cat);
    }
}

/* One block's tokens from position n on, dequantized into out (natural
   order). Returns the position after the last token read (16 when a run of
   zeros reaches the end), which is what the contexts and transforms use. */
static int read_coeffs(boolreader *br, unsigned char (*probs)[3][11], int ctx, const int dq[2], int n,
                       short *out)
{
    const unsigned char *p = probs[band_of[n]][ctx];
    for (; n < 16; n++) {
        int v;
        if (!br_bit(br, p[0])) return n; /* end of block */
        while (!br_bit(br, p[1])) {      /* zero */
            p = probs[band_of[++n]][0];
            if (n == 16) return 16;
        }
        if (!br_bit(br, p[2])) {
            v = 1;
            p = probs[band_of[n + 1]][1];
        } else {
            v = large_value(br, p);
            p = probs[band_of[n + 1]][2];
        }
        out[zigzag[n]] = (short)wrap16(br_signed(br, v) * dq[n > 0]);
    }
    return 16;
}

static void inverse_wht(const short *in, short *out);

/* The macroblock's coefficients into d->coeffs; code[i] tells which of
   block i's may be nonzero: 0 none, 1 the DC, 2 the first three in zigzag
   order, 3 any (libwebp picks its transform by this). Returns whether any
   block has coefficients. */
static int parse_residuals(vp8dec *d, int mbx, boolreader *br, unsigned char code[24])
{
    const mbmodes *m = &d->modes[mbx];
    const quant *q = &d->q[m->segment];
    short *c = d->coeffs;
    unsigned tnz = d->nz_t[mbx], lnz = d->nz_l;
    int first, type, x, y, ch, any = 0;

    memset(c, 0, sizeof d->coeffs);
    if (!m->i4x4) { /* the luma DCs come from the Y2 block and its WHT */
        short dc[16];
        int nz, i;
        memset(dc, 0, sizeof dc);
        nz = read_coeffs(br, d->coef[1], d->nzdc_t[mbx] + d->nzdc_l, q->y2, 0, dc);
        d->nzdc_t[mbx] = d->nzdc_l = (unsigned char)(nz > 0);
        if (nz > 1) {
            inverse_wht(dc, c);
        } else {
            int dc0 = wrap16((dc[0] + 3) >> 3);
            for (i = 0; i < 16; i++) c[16 * i] = (short)dc0;
        }
        first = 1;
        type = 0;
    } else {
        first = 0;
        type = 3;
    }
    /* bit x of tnz: block column x above has coefficients; bit y of lnz:
       block row y to the left; bits 4, 5 (U) and 6, 7 (V) likewise */
    for (y = 0; y < 4; y++) {
        unsigned l = (lnz >> y) & 1;
        for (x = 0; x < 4; x++) {
            short *blk = c + 16 * (4 * y + x);
            int nz = read_coeffs(br, d->coef[type], (int)(l + ((tnz >> x) & 1)), q->y1, first, blk);
            l = nz > first;
            tnz = (tnz & ~(1u << x)) | l << x;
            code[4 * y + x] = (unsigned char)(nz > 3 ? 3 : nz > 1 ? 2 : blk[0] != 0);
            any |= code[4 * y + x];
        }
        lnz = (lnz & ~(1u << y)) | l << y;
    }
    for (ch = 0; ch < 2; ch++)
        for (y = 0; y < 2; y++) {
            int lb = 4 + 2 * ch + y;
            unsigned l = (lnz >> lb) & 1;
            for (x = 0; x < 2; x++) {
                int tb = 4 + 2 * ch + x, i = 16 + 4 * ch + 2 * y + x;
                int nz = read_coeffs(br, d->coef[2], (int)(l + ((tnz >> tb) & 1)), q->uv, 0, c + 16 * i);
                l = nz > 0;
                tnz = (tnz & ~(1u << tb)) | l << tb;
                code[i] = (unsigned char)(nz > 3 ? 3 : nz > 1 ? 2 : c[16 * i] != 0);
                any |= code[i];
            }
            lnz = (lnz & ~(1u << lb)) | l << lb;
        }
    d->nz_t[mbx] = (unsigned char)tnz;
    d->nz_l = (unsigned char)lnz;
    return any;
}

/* ------------------------------------------------------------------------
   Reconstruction: prediction plus the inverse transforms, in a small
   workspace (stride WS) whose row above and column to the left hold the
   unfiltered neighbours, with libwebp's values off the frame's edges: 127
   above, 129 to the left. */

static void predict4(unsigned char *dst, int mode);
static void predict_block(unsigned char *dst, int size, int mode);
static void idct_add(const short *in, unsigned char *dst);
static void idct3_add(const short *in, unsigned char *dst);
static void idct_dc_add(const short *in, unsigned char *dst);

static void add_residual(unsigned char *dst, const short *in, int code)
{
    if (code == 3)
        idct_add(in, dst);
    else if (code == 2)
        idct3_add(in, dst);
    else if (code == 1)
        idct_dc_add(in, dst);
}

/* Chroma: libwebp transforms all four blocks fully when any has more than
   a DC, else only the DCs. */
static void add_residual_uv(unsigned char *dst, const short *in, const unsigned char code[4])
{
    int n, full = code[0] >= 2 || code[1] >= 2 || code[2] >= 2 || code[3] >= 2;
    for (n = 0; n < 4; n++) {
        unsigned char *b = dst + (n >> 1) * 4 * WS + (n & 1) * 4;
        if (full)
            idct_add(in + 16 * n, b);
        else if (code[n])
            idct_dc_add(in + 16 * n, b);
    }
}

/* DC prediction has variants for the frame's top and left edges. */
static int edge_mode(int mode, int mbx, int mby)
{
    if (mode != B_DC) return mode;
    if (mbx == 0) return mby == 0 ? DC_NOTOPLEFT : DC_NOLEFT;
    return mby == 0 ? DC_NOTOP : B_DC;
}

static void reconstruct(vp8dec *d, int mbx, int mby, const unsigned char code[24])
{
    const mbmodes *m = &d->modes[mbx];
    /* each plane has a row above it; column -1 is the left neighbour, 16..19 above-right */
    unsigned char *y = d->ws + WS + 8, *u = d->ws + 18 * WS + 8, *v = d->ws + 27 * WS + 8;
    const short *c = d->coeffs;
    int j, n;

    if (mbx == 0) {
        for (j = 0; j < 16; j++) y[j * WS - 1] = 129;
        for (j = 0; j < 8; j++) u[j * WS - 1] = v[j * WS - 1] = 129;
        if (mby > 0) {
            y[-WS - 1] = u[-WS - 1] = v[-WS - 1] = 129;
        } else {
            memset(y - WS - 1, 127, 16 + 4 + 1);
            memset(u - WS - 1, 127, 8 + 1);
            memset(v - WS - 1, 127, 8 + 1);
        }
    } else { /* the left neighbour's last column (and its top row's) */
        for (j = -1; j < 16; j++) y[j * WS - 1] = y[j * WS + 15];
        for (j = -1; j < 8; j++) {
            u[j * WS - 1] = u[j * WS + 7];
            v[j * WS - 1] = v[j * WS + 7];
        }
    }
    if (mby > 0) {
        memcpy(y - WS, d->top_y + 16 * mbx, 16);
        memcpy(u - WS, d->top_u + 8 * mbx, 8);
        memcpy(v - WS, d->top_v + 8 * mbx, 8);
    }

    if (m->i4x4) {
        unsigned char *tr = y - WS + 16; /* above-right of the macroblock */
        if (mby > 0) {
            if (mbx == d->mbw - 1)
                memset(tr, d->top_y[16 * mbx + 15], 4);
            else
                memcpy(tr, d->top_y + 16 * mbx + 16, 4);
        }
        /* the right column's blocks all see the macroblock's above-right */
        for (j = 3; j < 12; j += 4) memcpy(tr + (j + 1) * WS, tr, 4);
        for (n = 0; n < 16; n++) {
            unsigned char *dst = y + (n >> 2) * 4 * WS + (n & 3) * 4;
            predict4(dst, m->ymode[n]);
            add_residual(dst, c + 16 * n, code[n]);
        }
    } else {
        predict_block(y, 16, edge_mode(m->ymode[0], mbx, mby));
        for (n = 0; n < 16; n++) add_residual(y + (n >> 2) * 4 * WS + (n & 3) * 4, c + 16 * n, code[n]);
    }
    {
        int mode = edge_mode(m->uvmode, mbx, mby);
        predict_block(u, 8, mode);
        predict_block(v, 8, mode);
        add_residual_uv(u, c + 16 * 16, code + 16);
        add_residual_uv(v, c + 16 * 20, code + 20);
    }

    /* keep the unfiltered bottom row for the next row's prediction; the
       macroblock goes to the pixel rows, where it will be filtered */
    memcpy(d->top_y + 16 * mbx, y + 15 * WS, 16);
    memcpy(d->top_u + 8 * mbx, u + 7 * WS, 8);
    memcpy(d->top_v + 8 * mbx, v + 7 * WS, 8);
    {
        unsigned char *oy = d->cy + 16 * d->ys + 16 * (size_t)mbx;
        unsigned char *ou = d->cu + 8 * d->uvs + 8 * (size_t)mbx, *ov = d->cv + 8 * d->uvs + 8 * (size_t)mbx;
        for (j = 0; j < 16; j++) memcpy(oy + j * d->ys, y + j * WS, 16);
        for (j = 0; j < 8; j++) {
            memcpy(ou + j * d->uvs, u + j * WS, 8);
            memcpy(ov + j * d->uvs, v + j * WS, 8);
        }
    }
}

/* ------------------------------------------------------------------------
   Loop filter (RFC 6386, 15), with libwebp's arithmetic */

static int clamp_s8(int v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}

static int clamp_s4(int v) /* libwebp clips the filter's steps to [-16, 15] */
{
    return v < -16 ? -16 : v > 15 ? 15 : v;
}

static unsigned char clamp_u8(int v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int absi(int v)
{
    return v < 0 ? -v : v;
}

static int maxi(int a, int b)
{
    return a > b ? a : b;
}

/* p points at q0, the first pixel past the edge; s steps across it. */
static void adjust2(unsigned char *p, ptrdiff_t s)
{
    int p1 = p[-2 * s], p0 = p[-s], q0 = p[0], q1 = p[s];
    int a = 3 * (q0 - p0) + clamp_s8(p1 - q1);
    p[-s] = clamp_u8(p0 + clamp_s4((a + 3) >> 3));
    p[0] = clamp_u8(q0 - clamp_s4((a + 4) >> 3));
}

/* The simple filter along the 16 pixels of an edge: s steps across it, along along it. */
static void simple_edge(unsigned char *p, ptrdiff_t s, ptrdiff_t along, int thresh)
{
    int i, t2 = 2 * thresh + 1;
    for (i = 0; i < 16; i++, p += along)
        if (4 * absi(p[-s] - p[0]) + absi(p[-2 * s] - p[s]) <= t2) adjust2(p, s);
}

/* The normal filter along n <= 16 pixels of an edge: p points at the first
   pixel past it, s steps across it, along steps along it; mbedge: a
   macroblock edge (6 taps) rather than an inner one (4 taps). The eight
   pixels across the edge are copied out, every candidate result is
   computed without branches and the right one selected, which vectorizes. */
static void normal_edge(unsigned char *p, ptrdiff_t s, ptrdiff_t along, int n, int thresh, int ilevel, int hev,
                        int mbedge)
{
    unsigned char r[8][16]; /* p3 p2 p1 p0 q0 q1 q2 q3 */
    int i, k, t2 = 2 * thresh + 1;
    for (k = 0; k < 8; k++)
        for (i = 0; i < n; i++) r[k][i] = p[i * along + (k - 4) * s];
    for (i = 0; i < n; i++) {
        int p3 = r[0][i], p2 = r[1][i], p1 = r[2][i], p0 = r[3][i], q0 = r[4][i], q1 = r[5][i], q2 = r[6][i],
            q3 = r[7][i];
        int step = maxi(absi(p1 - p0), absi(q1 - q0));
        int interior = maxi(maxi(maxi(absi(p3 - p2), absi(p2 - p1)), maxi(absi(q3 - q2), absi(q2 - q1))), step);
        int on = 4 * absi(p0 - q0) + absi(p1 - q1) <= t2 && interior <= ilevel;
        int high = step > hev;
        int a = 3 * (q0 - p0) + clamp_s8(p1 - q1);
        int hp0 = clamp_u8(p0 + clamp_s4((a + 3) >> 3)), hq0 = clamp_u8(q0 - clamp_s4((a + 4) >> 3));
        int np2 = p2, np1, np0, nq0, nq1, nq2 = q2, full = on & !high;
        if (mbedge) {
            int w = clamp_s8(a);
            int a1 = (27 * w + 63) >> 7, a2 = (18 * w + 63) >> 7, a3 = (9 * w + 63) >> 7;
            np2 = clamp_u8(p2 + a3);
            np1 = clamp_u8(p1 + a2);
            np0 = clamp_u8(p0 + a1);
            nq0 = clamp_u8(q0 - a1);
            nq1 = clamp_u8(q1 - a2);
            nq2 = clamp_u8(q2 - a3);
        } else {
            int b = 3 * (q0 - p0), a1 = clamp_s4((b + 4) >> 3), a2 = clamp_s4((b + 3) >> 3), a3 = (a1 + 1) >> 1;
            np1 = clamp_u8(p1 + a3);
            np0 = clamp_u8(p0 + a2);
            nq0 = clamp_u8(q0 - a1);
            nq1 = clamp_u8(q1 - a3);
        }
        r[1][i] = (unsigned char)(full ? np2 : p2);
        r[2][i] = (unsigned char)(full ? np1 : p1);
        r[3][i] = (unsigned char)(full ? np0 : on ? hp0 : p0);
        r[4][i] = (unsigned char)(full ? nq0 : on ? hq0 : q0);
        r[5][i] = (unsigned char)(full ? nq1 : q1);
        r[6][i] = (unsigned char)(full ? nq2 : q2);
    }
    for (k = 1; k < 7; k++)
        for (i = 0; i < n; i++) p[i * along + (k - 4) * s] = r[k][i];
}

/* In libwebp's order: left edge, inner vertical edges, top edge, inner
   horizontal edges. */
static void filter_mb(vp8dec *d, int mbx, int mby, const filterinfo *f)
{
    ptrdiff_t ys = (ptrdiff_t)d->ys, uvs = (ptrdiff_t)d->uvs;
    unsigned char *y = d->cy + 16 * d->ys + 16 * (size_t)mbx;
    unsigned char *u = d->cu + 8 * d->uvs + 8 * (size_t)mbx, *v = d->cv + 8 * d->uvs + 8 * (size_t)mbx;
    int lim = f->limit, il = f->ilevel, hev = f->hev, k;
    if (d->filter_type == 1) {
        if (mbx > 0) simple_edge(y, 1, ys, lim + 4);
        if (f->inner)
            for (k = 4; k < 16; k += 4) simple_edge(y + k, 1, ys, lim);
        if (mby > 0) simple_edge(y, ys, 1, lim + 4);
        if (f->inner)
            for (k = 4; k < 16; k += 4) simple_edge(y + k * ys, ys, 1, lim);
        return;
    }
    if (mbx > 0) {
        normal_edge(y, 1, ys, 16, lim + 4, il, hev, 1);
        normal_edge(u, 1, uvs, 8, lim + 4, il, hev, 1);
        normal_edge(v, 1, uvs, 8, lim + 4, il, hev, 1);
    }
    if (f->inner) {
        for (k = 4; k < 16; k += 4) normal_edge(y + k, 1, ys, 16, lim, il, hev, 0);
        normal_edge(u + 4, 1, uvs, 8, lim, il, hev, 0);
        normal_edge(v + 4, 1, uvs, 8, lim, il, hev, 0);
    }
    if (mby > 0) {
        normal_edge(y, ys, 1, 16, lim + 4, il, hev, 1);
        normal_edge(u, uvs, 1, 8, lim + 4, il, hev, 1);
        normal_edge(v, uvs, 1, 8, lim + 4, il, hev, 1);
    }
    if (f->inner) {
        for (k = 4; k < 16; k += 4) normal_edge(y + k * ys, ys, 1, 16, lim, il, hev, 0);
        normal_edge(u + 4 * uvs, uvs, 1, 8, lim, il, hev, 0);
        normal_edge(v + 4 * uvs, uvs, 1, 8, lim, il, hev, 0);
    }
}

/* ------------------------------------------------------------------------
   RGB: libwebp's fancy upsampling of the chroma (each output sample from
   the four nearest chroma samples, weights 9-3-3-1, in its rounding order)
   and its fixed-point YUV -> RGB (14-bit, BT.601 limited range) */

static void upsample_row(const unsigned char *near, const unsigned char *far, unsigned char *out, int w)
{
    int x, last = (w - 1) >> 1;
    out[0] = (unsigned char)((3 * near[0] + far[0] + 2) >> 2);
    for (x = 1; x <= last; x++) {
        int a = near[x - 1], b = near[x], fa = far[x - 1], fb = far[x];
        out[2 * x - 1] = (unsigned char)((((3 * b + 3 * fa + a + fb + 8) >> 3) + a) >> 1);
        out[2 * x] = (unsigned char)((((3 * a + 3 * fb + b + fa + 8) >> 3) + b) >> 1);
    }
    if (!(w & 1)) out[w - 1] = (unsigned char)((3 * near[last] + far[last] + 2) >> 2);
}

static unsigned char clip_rgb(int v) /* v: 14-bit fixed point; written to vectorize */
{
    v = v < 0 ? 0 : v;
    v = v > 16383 ? 16383 : v;
    return (unsigned char)(v >> 6);
}

/* In two passes: the arithmetic into planar R, G, B (it vectorizes), then
   interleaved. */
static void yuv_to_planes(const unsigned char *restrict y, const unsigned char *restrict u,
                          const unsigned char *restrict v, unsigned char *restrict r, unsigned char *restrict g,
                          unsigned char *restrict b, int w)
{
    int x;
    for (x = 0; x < w; x++) {
        int yy = y[x] * 19077 >> 8, uu = u[x], vv = v[x];
        r[x] = clip_rgb(yy + (vv * 26149 >> 8) - 14234);
        g[x] = clip_rgb(yy - (uu * 6419 >> 8) - (vv * 13320 >> 8) + 8708);
        b[x] = clip_rgb(yy + (uu * 33050 >> 8) - 17685);
    }
}

static void interleave(const unsigned char *restrict r, const unsigned char *restrict g,
                       const unsigned char *restrict b, unsigned char *restrict rgb, int w)
{
    int x;
    for (x = 0; x < w; x++) {
        rgb[3 * x + 0] = r[x];
        rgb[3 * x + 1] = g[x];
        rgb[3 * x + 2] = b[x];
    }
}

/* Convert the rows that are final after macroblock row mby: the loop filter
   of the next row still changes the last few (libwebp holds back 0, 2 or 8
   by filter type), and the upsampler needs the chroma row below. The pixel
   rows hold luma rows 16 * (mby - 1) on, chroma rows 8 * (mby - 1) on. */
static void emit_rows(vp8dec *d, int mby, unsigned char *rgb, size_t stride)
{
    static const int held[3] = {0, 2, 8};
    int last = mby == d->mbh - 1, ch = (d->height + 1) >> 1;
    int ylim = last ? d->height : 16 * mby + 16 - held[d->filter_type];
    int clim = last ? ch : 8 * mby + 8 - held[d->filter_type] / 2;
    int y0 = 16 * (mby - 1), c0 = 8 * (mby - 1);
    if (ylim > d->height) ylim = d->height;
    for (; d->next_row < ylim; d->next_row++) {
        int y = d->next_row, near = y >> 1, far;
        if (y == 0)
            far = 0;
        else if (y & 1)
            far = near + 1 < ch ? near + 1 : ch - 1;
        else
            far = near - 1;
        if ((far > near ? far : near) >= clim) break;
        /* held back at most 9 luma, 5 chroma rows: y >= y0 and far, near >= c0 */
        upsample_row(d->cu + (size_t)(near - c0) * d->uvs, d->cu + (size_t)(far - c0) * d->uvs, d->up_u, d->width);
        upsample_row(d->cv + (size_t)(near - c0) * d->uvs, d->cv + (size_t)(far - c0) * d->uvs, d->up_v, d->width);
        yuv_to_planes(d->cy + (size_t)(y - y0) * d->ys, d->up_u, d->up_v, d->planar, d->planar + d->width,
                      d->planar + 2 * (size_t)d->width, d->width);
        interleave(d->planar, d->planar + d->width, d->planar + 2 * (size_t)d->width, rgb + (size_t)y * stride, d->width);
    }
}

/* ------------------------------------------------------------------------
   Intra predictors (RFC 6386, 12), with libwebp's arithmetic */

#define AVG3(a, b, c) ((unsigned char)(((a) + 2 * (b) + (c) + 2) >> 2))
#define AVG2(a, b) ((unsigned char)(((a) + (b) + 1) >> 1))
#define P(x, y) dst[(x) + (y) * WS]

static void fill(unsigned char *dst, int size, int v)
{
    int j;
    for (j = 0; j < size; j++) memset(dst + j * WS, v, (size_t)size);
}

/* 16x16 luma and 8x8 chroma: DC (and its edge variants), TM, V, H. */
static void predict_block(unsigned char *dst, int size, int mode)
{
    const unsigned char *top = dst - WS;
    int i, j, sum = 0, sh = size == 16 ? 4 : 3;
    switch (mode) {
    case B_DC:
        for (i = 0; i < size; i++) sum += top[i] + dst[i * WS - 1];
        fill(dst, size, (sum + size) >> (sh + 1));
        break;
    case DC_NOTOP:
        for (i = 0; i < size; i++) sum += dst[i * WS - 1];
        fill(dst, size, (sum + size / 2) >> sh);
        break;
    case DC_NOLEFT:
        for (i = 0; i < size; i++) sum += top[i];
        fill(dst, size, (sum + size / 2) >> sh);
        break;
    case DC_NOTOPLEFT:
        fill(dst, size, 128);
        break;
    case B_TM:
        for (j = 0; j < size; j++) {
            int l = dst[j * WS - 1] - top[-1];
            for (i = 0; i < size; i++) P(i, j) = clamp_u8(l + top[i]);
        }
        break;
    case B_VE:
        for (j = 0; j < size; j++) memcpy(dst + j * WS, top, (size_t)size);
        break;
    default: /* B_HE */
        for (j = 0; j < size; j++) memset(dst + j * WS, dst[j * WS - 1], (size_t)size);
        break;
    }
}

static void predict4(unsigned char *dst, int mode)
{
    const unsigned char *t = dst - WS;
    int X = t[-1], A = t[0], B = t[1], C = t[2], D = t[3], E = t[4], F = t[5], G = t[6], H = t[7];
    int I = P(-1, 0), J = P(-1, 1), K = P(-1, 2), L = P(-1, 3);
    int x, y;
    switch (mode) {
    case B_DC: {
        int dc = 4;
        for (x = 0; x < 4; x++) dc += t[x] + P(-1, x);
        fill(dst, 4, dc >> 3);
        break;
    }
    case B_TM:
        for (y = 0; y < 4; y++)
            for (x = 0; x < 4; x++) P(x, y) = clamp_u8(P(-1, y) + t[x] - X);
        break;
    case B_VE:
        for (y = 0; y < 4; y++) {
            P(0, y) = AVG3(X, A, B);
            P(1, y) = AVG3(A, B, C);
            P(2, y) = AVG3(B, C, D);
            P(3, y) = AVG3(C, D, E);
        }
        break;
    case B_HE:
        memset(dst, AVG3(X, I, J), 4);
        memset(dst + WS, AVG3(I, J, K), 4);
        memset(dst + 2 * WS, AVG3(J, K, L), 4);
        memset(dst + 3 * WS, AVG3(K, L, L), 4);
        break;
    case B_RD: { /* edge from bottom-left to top-right */
        const int e[9] = {L, K, J, I, X, A, B, C, D};
        for (y = 0; y < 4; y++)
            for (x = 0; x < 4; x++) P(x, y) = AVG3(e[3 + x - y], e[4 + x - y], e[5 + x - y]);
        break;
    }
    case B_VR:
        P(0, 0) = P(1, 2) = AVG2(X, A);
        P(1, 0) = P(2, 2) = AVG2(A, B);
        P(2, 0) = P(3, 2) = AVG2(B, C);
        P(3, 0) = AVG2(C, D);
        P(0, 3) = AVG3(K, J, I);
        P(0, 2) = AVG3(J, I, X);
        P(0, 1) = P(1, 3) = AVG3(I, X, A);
        P(1, 1) = P(2, 3) = AVG3(X, A, B);
        P(2, 1) = P(3, 3) = AVG3(A, B, C);
        P(3, 1) = AVG3(B, C, D);
        break;
    case B_LD: {
        const int e[9] = {A, B, C, D, E, F, G, H, H};
        for (y = 0; y < 4; y++)
            for (x = 0; x < 4; x++) P(x, y) = AVG3(e[x + y], e[x + y + 1], e[x + y + 2]);
        break;
    }
    case B_VL:
        P(0, 0) = AVG2(A, B);
        P(1, 0) = P(0, 2) = AVG2(B, C);
        P(2, 0) = P(1, 2) = AVG2(C, D);
        P(3, 0) = P(2, 2) = AVG2(D, E);
        P(0, 1) = AVG3(A, B, C);
        P(1, 1) = P(0, 3) = AVG3(B, C, D);
        P(2, 1) = P(1, 3) = AVG3(C, D, E);
        P(3, 1) = P(2, 3) = AVG3(D, E, F);
        P(3, 2) = AVG3(E, F, G);
        P(3, 3) = AVG3(F, G, H);
        break;
    case B_HD:
        P(0, 0) = P(2, 1) = AVG2(I, X);
        P(0, 1) = P(2, 2) = AVG2(J, I);
        P(0, 2) = P(2, 3) = AVG2(K, J);
        P(0, 3) = AVG2(L, K);
        P(3, 0) = AVG3(A, B, C);
        P(2, 0) = AVG3(X, A, B);
        P(1, 0) = P(3, 1) = AVG3(I, X, A);
        P(1, 1) = P(3, 2) = AVG3(J, I, X);
        P(1, 2) = P(3, 3) = AVG3(K, J, I);
        P(1, 3) = AVG3(L, K, J);
        break;
    default: /* B_HU */
        P(0, 0) = AVG2(I, J);
        P(2, 0) = P(0, 1) = AVG2(J, K);
        P(2, 1) = P(0, 2) = AVG2(K, L);
        P(1, 0) = AVG3(I, J, K);
        P(3, 0) = P(1, 1) = AVG3(J, K, L);
        P(3, 1) = P(1, 2) = AVG3(K, L, L);
        P(3, 2) = P(2, 2) = P(0, 3) = P(1, 3) = P(2, 3) = P(3, 3) = (unsigned char)L;
        break;
    }
}

#undef AVG3
#undef AVG2
#undef P

/* ------------------------------------------------------------------------
   Inverse transforms (RFC 6386, 14.3 and 14.4), as libwebp computes them */

static void inverse_wht(const short *in, short *out)
{
    int t[16], i;
    for (i = 0; i < 4; i++) {
        int a0 = in[i] + in[12 + i], a1 = in[4 + i] + in[8 + i];
        int a2 = in[4 + i] - in[8 + i], a3 = in[i] - in[12 + i];
        t[i] = a0 + a1;
        t[8 + i] = a0 - a1;
        t[4 + i] = a3 + a2;
        t[12 + i] = a3 - a2;
    }
    for (i = 0; i < 4; i++) { /* out: the DC of each of the 16 luma blocks */
        int dc = t[4 * i] + 3;
        int a0 = dc + t[4 * i + 3], a1 = t[4 * i + 1] + t[4 * i + 2];
        int a2 = t[4 * i + 1] - t[4 * i + 2], a3 = dc - t[4 * i + 3];
        out[64 * i + 0] = (short)wrap16((a0 + a1) >> 3);
        out[64 * i + 16] = (short)wrap16((a3 + a2) >> 3);
        out[64 * i + 32] = (short)wrap16((a0 - a1) >> 3);
        out[64 * i + 48] = (short)wrap16((a3 - a2) >> 3);
    }
}

/* The inverse DCT as x86 builds of libwebp compute it (SSE2): 16-bit
   lanes that wrap, products' high halves. For every stream an encoder
   makes nothing wraps and this is the 32-bit arithmetic of RFC 6386; written
   out so that hostile coefficients give libwebp's pixels too. 20091 and
   35468 - 65536: x * sqrt(2) * cos(pi/8) - x and x * sqrt(2) * sin(pi/8) - x
   in 16-bit fixed point. */
static int mulhi(int a, int k)
{
    return (a * k) >> 16;
}

/* idct_add for coefficients in [-2048, 2047], where no intermediate value
   leaves 16 bits. */
static void idct_add_narrow(const short *in, unsigned char *dst)
{
    int t[16], i;
    for (i = 0; i < 4; i++) { /* columns */
        int i0 = in[i], i1 = in[4 + i], i2 = in[8 + i], i3 = in[12 + i];
        int a = i0 + i2, b = i0 - i2;
        int c = i1 - i3 + mulhi(i1, -30068) - mulhi(i3, 20091);
        int d = i1 + i3 + mulhi(i1, 20091) + mulhi(i3, -30068);
        t[4 * i + 0] = a + d;
        t[4 * i + 1] = b + c;
        t[4 * i + 2] = b - c;
        t[4 * i + 3] = a - d;
    }
    for (i = 0; i < 4; i++, dst += WS) { /* rows */
        int t1 = t[4 + i], t3 = t[12 + i];
        int dc = t[i] + 4, a = dc + t[8 + i], b = dc - t[8 + i];
        int c = t1 - t3 + mulhi(t1, -30068) - mulhi(t3, 20091);
        int d = t1 + t3 + mulhi(t1, 20091) + mulhi(t3, -30068);
        dst[0] = clamp_u8(dst[0] + ((a + d) >> 3));
        dst[1] = clamp_u8(dst[1] + ((b + c) >> 3));
        dst[2] = clamp_u8(dst[2] + ((b - c) >> 3));
        dst[3] = clamp_u8(dst[3] + ((a - d) >> 3));
    }
}

static void idct_add(const short *in, unsigned char *dst)
{
    int t[16], i, wide = 0;
    for (i = 0; i < 16; i++) wide |= in[i] < -2048 || in[i] > 2047;
    if (!wide) { /* then nothing can wrap: the plain arithmetic is the same */
        idct_add_narrow(in, dst);
        return;
    }
    for (i = 0; i < 4; i++) { /* columns */
        int i0 = in[i], i1 = in[4 + i], i2 = in[8 + i], i3 = in[12 + i];
        int a = wrap16(i0 + i2), b = wrap16(i0 - i2);
        int c = wrap16(wrap16(i1 - i3) + wrap16(mulhi(i1, -30068) - mulhi(i3, 20091)));
        int d = wrap16(wrap16(i1 + i3) + wrap16(mulhi(i1, 20091) + mulhi(i3, -30068)));
        t[4 * i + 0] = wrap16(a + d);
        t[4 * i + 1] = wrap16(b + c);
        t[4 * i + 2] = wrap16(b - c);
        t[4 * i + 3] = wrap16(a - d);
    }
    for (i = 0; i < 4; i++, dst += WS) { /* rows */
        int t0 = t[i], t1 = t[4 + i], t2 = t[8 + i], t3 = t[12 + i];
        int dc = wrap16(t0 + 4), a = wrap16(dc + t2), b = wrap16(dc - t2);
        int c = wrap16(wrap16(t1 - t3) + wrap16(mulhi(t1, -30068) - mulhi(t3, 20091)));
        int d = wrap16(wrap16(t1 + t3) + wrap16(mulhi(t1, 20091) + mulhi(t3, -30068)));
        dst[0] = clamp_u8(dst[0] + (wrap16(a + d) >> 3));
        dst[1] = clamp_u8(dst[1] + (wrap16(b + c) >> 3));
        dst[2] = clamp_u8(dst[2] + (wrap16(b - c) >> 3));
        dst[3] = clamp_u8(dst[3] + (wrap16(a - d) >> 3));
    }
}

/* Only coefficients 0, 1 and 4 (the first three in zigzag order): libwebp's
   shortcut, in 32-bit arithmetic. */
static void idct3_add(const short *in, unsigned char *dst)
{
    int c4 = (in[4] * 35468) >> 16, d4 = ((in[4] * 20091) >> 16) + in[4];
    int c1 = (in[1] * 35468) >> 16, d1 = ((in[1] * 20091) >> 16) + in[1];
    int row[4], i;
    row[0] = in[0] + 4 + d4;
    row[1] = in[0] + 4 + c4;
    row[2] = in[0] + 4 - c4;
    row[3] = in[0] + 4 - d4;
    for (i = 0; i < 4; i++, dst += WS) {
        dst[0] = clamp_u8(dst[0] + ((row[i] + d1) >> 3));
        dst[1] = clamp_u8(dst[1] + ((row[i] + c1) >> 3));
        dst[2] = clamp_u8(dst[2] + ((row[i] - c1) >> 3));
        dst[3] = clamp_u8(dst[3] + ((row[i] - d1) >> 3));
    }
}

static void idct_dc_add(const short *in, unsigned char *dst)
{
    int dc = (in[0] + 4) >> 3, i, j;
    for (j = 0; j < 4; j++, dst += WS)
        for (i = 0; i < 4; i++) dst[i] = clamp_u8(dst[i] + dc);
}

/* ------------------------------------------------------------------------
   Boolean decoder (RFC 6386, 7), with libwebp's bookkeeping: past the end
   it feeds one byte of zeros and sets eof, which fails the decode at the
   next check; after that it stops shifting in. */

static void br_load(boolreader *br)
{
    if (br->end - br->p >= 8) { /* 7 bytes at a time while 8 remain, as libwebp */
        const unsigned char *p = br->p;
        uint64_t v = (uint64_t)p[0] << 48 | (uint64_t)p[1] << 40 | (uint64_t)p[2] << 32 | (uint64_t)p[3] << 24 |
                     (uint64_t)p[4] << 16 | (uint64_t)p[5] << 8 | p[6];
        br->p += 7;
        br->value = br->value << 56 | v;
        br->bits += 56;
    } else if (br->p < br->end) {
        br->value = br->value << 8 | *br->p++;
        br->bits += 8;
    } else if (!br->eof) {
        br->value <<= 8;
        br->bits += 8;
        br->eof = 1;
    } else {
        br->bits = 0;
    }
}

static void br_init(boolreader *br, const unsigned char *start, size_t size)
{
    br->p = start;
    br->end = start + size;
    br->value = 0;
    br->bits = -8;
    br->range = 254;
    br->eof = 0;
    br_load(br);
}

static int br_bit(boolreader *br, int prob)
{
    uint32_t range = br->range, split, value;
    int bit, shift;
    if (br->bits < 0) br_load(br);
    split = (range * (uint32_t)prob) >> 8;
    value = (uint32_t)(br->value >> br->bits);
    bit = value > split;
    if (bit) {
        range -= split;
        br->value -= (uint64_t)(split + 1) << br->bits;
    } else {
        range = split + 1;
    }
    shift = norm_shift[range];
    br->bits -= shift;
    br->range = (range << shift) - 1;
    return bit;
}

/* A sign bit (probability 1/2) applied to v, exactly as libwebp's
   VP8GetSigned consumes it. */
static int br_signed(boolreader *br, int v)
{
    uint32_t split, value;
    if (br->bits < 0) br_load(br);
    split = br->range >> 1;
    value = (uint32_t)(br->value >> br->bits);
    br->bits -= 1;
    if (value > split) {
        br->range = (br->range - 1) | 1;
        br->value -= (uint64_t)(split + 1) << (br->bits + 1);
        return -v;
    }
    br->range |= 1;
    return v;
}

static int br_value(boolreader *br, int nbits)
{
    int v = 0;
    while (nbits-- > 0) v |= br_bit(br, 128) << nbits;
    return v;
}

static int br_svalue(boolreader *br, int nbits)
{
    int v = br_value(br, nbits);
    return br_bit(br, 128) ? -v : v;
}
