//! The C math library (`libm`): what std's float methods (`powf`, `exp`,
//! `ln`, `sin`, `%`, ...) and crates call, for `f64` and `f32`, over the
//! `libm` crate (a port of musl's libm, which is what a static Linux
//! program would get). tokio's multi-thread scheduler needs `pow` (its
//! poll-time average).
//!
//! Functions that x86_64 does in an instruction (`sqrt`, `fabs`,
//! `copysign`) or that compiler-builtins provides (`__powidf2`) are not
//! here; the rest of C99's `<math.h>` that std reaches is.

use super::c_int;

/// Defines exported functions of one, two or three `f64`/`f32`
/// arguments that call `libm`'s function of the same name.
macro_rules! math {
    ($($name:ident($($a:ident),+) -> $t:ty;)*) => {$(
        #[doc = concat!("`", stringify!($name), "`.")]
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub extern "C" fn $name($($a: $t),+) -> $t {
            libm::$name($($a),+)
        }
    )*};
}

math! {
    pow(x, y) -> f64;
    powf(x, y) -> f32;
    exp(x) -> f64;
    expf(x) -> f32;
    exp2(x) -> f64;
    exp2f(x) -> f32;
    expm1(x) -> f64;
    expm1f(x) -> f32;
    log(x) -> f64;
    logf(x) -> f32;
    log2(x) -> f64;
    log2f(x) -> f32;
    log10(x) -> f64;
    log10f(x) -> f32;
    log1p(x) -> f64;
    log1pf(x) -> f32;
    sin(x) -> f64;
    sinf(x) -> f32;
    cos(x) -> f64;
    cosf(x) -> f32;
    tan(x) -> f64;
    tanf(x) -> f32;
    asin(x) -> f64;
    asinf(x) -> f32;
    acos(x) -> f64;
    acosf(x) -> f32;
    atan(x) -> f64;
    atanf(x) -> f32;
    atan2(y, x) -> f64;
    atan2f(y, x) -> f32;
    sinh(x) -> f64;
    sinhf(x) -> f32;
    cosh(x) -> f64;
    coshf(x) -> f32;
    tanh(x) -> f64;
    tanhf(x) -> f32;
    asinh(x) -> f64;
    asinhf(x) -> f32;
    acosh(x) -> f64;
    acoshf(x) -> f32;
    atanh(x) -> f64;
    atanhf(x) -> f32;
    cbrt(x) -> f64;
    cbrtf(x) -> f32;
    hypot(x, y) -> f64;
    hypotf(x, y) -> f32;
    fmod(x, y) -> f64;
    fmodf(x, y) -> f32;
    remainder(x, y) -> f64;
    remainderf(x, y) -> f32;
    fma(x, y, z) -> f64;
    fmaf(x, y, z) -> f32;
    floor(x) -> f64;
    floorf(x) -> f32;
    ceil(x) -> f64;
    ceilf(x) -> f32;
    trunc(x) -> f64;
    truncf(x) -> f32;
    round(x) -> f64;
    roundf(x) -> f32;
    rint(x) -> f64;
    rintf(x) -> f32;
    fmin(x, y) -> f64;
    fminf(x, y) -> f32;
    fmax(x, y) -> f64;
    fmaxf(x, y) -> f32;
    fdim(x, y) -> f64;
    fdimf(x, y) -> f32;
    nextafter(x, y) -> f64;
    nextafterf(x, y) -> f32;
    tgamma(x) -> f64;
    tgammaf(x) -> f32;
    lgamma(x) -> f64;
    lgammaf(x) -> f32;
    erf(x) -> f64;
    erff(x) -> f32;
    erfc(x) -> f64;
    erfcf(x) -> f32;
}

/// `lgamma_r(x, sign)`: the log of |Γ(x)|, and Γ(x)'s sign in `*sign`
/// (std's `ln_gamma`).
///
/// # Safety
///
/// `sign` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn lgamma_r(x: f64, sign: *mut c_int) -> f64 {
    let (v, s) = libm::lgamma_r(x);
    // SAFETY: the caller guarantees sign is writable.
    unsafe { sign.write(s) };
    v
}

/// `lgammaf_r(x, sign)`.
///
/// # Safety
///
/// `sign` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn lgammaf_r(x: f32, sign: *mut c_int) -> f32 {
    let (v, s) = libm::lgammaf_r(x);
    // SAFETY: the caller guarantees sign is writable.
    unsafe { sign.write(s) };
    v
}

/// `frexp(x, exp)`.
///
/// # Safety
///
/// `exp` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn frexp(x: f64, e: *mut c_int) -> f64 {
    let (m, k) = libm::frexp(x);
    // SAFETY: the caller guarantees e is writable.
    unsafe { e.write(k) };
    m
}

/// `nearbyint(x)`: `rint` (the same in the default rounding mode; the
/// inexact flag is not observed).
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn nearbyint(x: f64) -> f64 {
    libm::rint(x)
}

/// `nearbyintf(x)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn nearbyintf(x: f32) -> f32 {
    libm::rintf(x)
}

/// `ldexp(x, exp)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn ldexp(x: f64, e: c_int) -> f64 {
    libm::ldexp(x, e)
}

/// `scalbn(x, n)`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn scalbn(x: f64, n: c_int) -> f64 {
    libm::scalbn(x, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_are_libm_s() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(pow(0.0, -1.0), f64::INFINITY);
        // tokio's weighted average: (1 - alpha)^n.
        let w = 1.0 - pow(1.0 - 0.1, 3.0);
        assert!((w - 0.271).abs() < 1e-12);
        assert_eq!(fmod(7.5, 2.0), 1.5);
        assert_eq!(floor(-1.5), -2.0);
        assert!((exp(1.0) - core::f64::consts::E).abs() < 1e-15);
        assert!((log(core::f64::consts::E) - 1.0).abs() < 1e-15);
        let mut sign = 0;
        // SAFETY: sign is writable.
        let v = unsafe { lgamma_r(-0.5, &mut sign) };
        assert!((v - 1.265_512_123_484_645_3).abs() < 1e-12 && sign == -1);
        assert_eq!(powf(3.0, 2.0), 9.0);
    }
}
