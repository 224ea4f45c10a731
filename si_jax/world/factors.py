"""Toyfaces factors: binary attributes (exact labels), continuous nuisance factors, and their sampling.

A factor set is a dict name -> float32 array [N], with one entry per name in ATTRIBUTES (values exactly 0.0 or
1.0) and in NUISANCE (ranges in NUISANCE_RANGE). Image i of seed s is drawn from
jax.random.fold_in(jax.random.PRNGKey(s), i) alone, so it is the same in whatever batch it is sampled.
"""
import jax
import jax.numpy as jnp

# Segmentation classes (index = class id in seg maps). 'brows' is its own class, not part of 'eyes'.
PARTS = ('background', 'skin', 'hair', 'eyes', 'glasses', 'mouth', 'brows')

# Binary attributes, fixed order; each changes the pixels of one part only.
ATTRIBUTES = ('blond_hair', 'bangs', 'eyeglasses', 'mouth_open', 'smile', 'thick_brows')
ATTRIBUTE_PART = {'blond_hair': 'hair', 'bangs': 'hair', 'eyeglasses': 'glasses', 'mouth_open': 'mouth',
                  'smile': 'mouth', 'thick_brows': 'brows'}

# Sampling model: P(first) and P(second | first), P(second | not first) for the correlated pairs,
# P(attribute) for the independent ones. Marginals: smile .45, mouth_open .425, blond .40, bangs .42,
# eyeglasses .35, thick_brows .40.
CORRELATED_PAIRS = (('smile', 'mouth_open'), ('blond_hair', 'bangs'))
PAIR_PROBS = {('smile', 'mouth_open'): (0.45, 0.70, 0.20), ('blond_hair', 'bangs'): (0.40, 0.60, 0.30)}
INDEPENDENT_PROBS = {'eyeglasses': 0.35, 'thick_brows': 0.40}

# Continuous nuisance factors ("identity"), fixed order, each uniform on its range:
#   skin_tone [0, 1] (light..dark), face_width / face_height [-1, 1], yaw / pitch [-1, 1] (features shift
#   sideways / up-down), shift_x / shift_y [-1, 1] (whole head, at most ~0.8 px at 32 px), bg_hue [0, 1)
#   (background hue), light_x / light_y [-1, 1] (light direction: shading gradient across every layer),
#   hair_tone [-1, 1] (shade within the hair colour class, also brows), hair_length [0, 1] (side hair).
NUISANCE = ('skin_tone', 'face_width', 'face_height', 'yaw', 'pitch', 'shift_x', 'shift_y', 'bg_hue',
            'light_x', 'light_y', 'hair_tone', 'hair_length')
NUISANCE_RANGE = {name: (0.0, 1.0) if name in ('skin_tone', 'bg_hue', 'hair_length') else (-1.0, 1.0)
                  for name in NUISANCE}


def _sample_one(key):
    """Factors of one image from its key: dict name -> float32 scalar."""
    u = jax.random.uniform(key, (len(ATTRIBUTES) + len(NUISANCE),), jnp.float32)
    out, col = {}, 0
    for first, second in CORRELATED_PAIRS:
        p_first, p_given, p_given_not = PAIR_PROBS[(first, second)]
        out[first] = u[col] < p_first
        out[second] = u[col + 1] < jnp.where(out[first], p_given, p_given_not)
        col += 2
    for name, p in INDEPENDENT_PROBS.items():
        out[name] = u[col] < p
        col += 1
    out = {name: out[name].astype(jnp.float32) for name in ATTRIBUTES}
    for name in NUISANCE:
        lo, hi = NUISANCE_RANGE[name]
        out[name] = lo + (hi - lo) * u[col]
        col += 1
    return out


@jax.jit
def sample_factors(seed, indices):
    """Factors of images `indices` (int [N]) of world `seed` (int): dict name -> float32 [N]. jit-compiled."""
    base = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(indices, jnp.uint32))
    return jax.vmap(_sample_one)(keys)


def attributes_of(factors):
    """Binary attribute labels [N, A] bool, columns in ATTRIBUTES order."""
    return jnp.stack([factors[name] > 0.5 for name in ATTRIBUTES], axis=-1)


def nuisance_of(factors):
    """Nuisance factors [N, K] float32, columns in NUISANCE order, ranges as NUISANCE_RANGE."""
    return jnp.stack([jnp.asarray(factors[name], jnp.float32) for name in NUISANCE], axis=-1)


def with_attribute(factors, name, value):
    """Copy of `factors` with binary attribute `name` set to `value` (0/1 or bool) for every image."""
    if name not in ATTRIBUTES:
        raise KeyError(f"unknown attribute {name!r}; expected one of {ATTRIBUTES}")
    out = dict(factors)
    out[name] = jnp.full_like(jnp.asarray(factors[name], jnp.float32), 1.0 if value else 0.0)
    return out
