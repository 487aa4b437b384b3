/* The allocator ids and the tables derived from hooked.def (the one list of hooked allocator functions). Part of
 * recorder.c. */

enum {
#define ALLOCATOR(id, label, family, symbol, hook, params, args) id,
#include "hooked.def"
#undef ALLOCATOR
    A_COUNT
};

/* label\0family-digit per allocator, in id order: the reader builds its id -> (label, family) table from this. */
static const char ML_NAMES[] =
#define ALLOCATOR(id, label, family, symbol, hook, params, args) label "\0" #family "\0"
#include "hooked.def"
#undef ALLOCATOR
    ;

static const uint8_t ML_FAMILY[A_COUNT] = {
#define ALLOCATOR(id, label, family, symbol, hook, params, args) [id] = family,
#include "hooked.def"
#undef ALLOCATOR
};

/* The function each hook forwards to (dlsym(RTLD_NEXT) of this name; "" for an id without a function). */
static const char *const ML_SYMBOLS[A_COUNT] = {
#define ALLOCATOR(id, label, family, symbol, hook, params, args) [id] = #symbol,
#include "hooked.def"
#undef ALLOCATOR
};

#define ML_FAMILY_ANY 3 /* a block adopted at an attach: whatever releases it matches */

static inline uint8_t ml_family(unsigned allocator) { return ML_FAMILY[allocator]; }
