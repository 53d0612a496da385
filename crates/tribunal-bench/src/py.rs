//! The Python and NumPy number semantics the reference scorers depend on, so that Tribunal
//! prints the same digits they do: `float()` parsing, `repr()` of a float, the built-in
//! `sum()`, NumPy's pairwise summation (what pandas' `mean()` uses), `str.isspace()` and
//! `int / int` of binomial coefficients.
//!
//! Everything here is pure and total: bad input gives `None`, never a panic.

/// Python's `str.isspace()`, which is also what `\s` matches in a `re` pattern on `str`:
/// Unicode `White_Space` plus the four ASCII separators U+001C..U+001F.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()` with no argument.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The whitespace `float()` strips after its Unicode pass (C `isspace` in the "C" locale).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// First code point of every run of ten Unicode decimal digits (category Nd) outside ASCII,
/// as of Unicode 15 (CPython 3.12 and 3.13). `float()` maps each to its ASCII digit.
const DECIMAL_ZEROS: &[u32] = &[
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
    0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50,
    0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0,
    0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

fn decimal_value(c: char) -> Option<u8> {
    let cp = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then(|| (cp - zero) as u8)
}

/// Python's `float(s)` for a `str`: `None` where Python raises `ValueError`.
///
/// Accepts surrounding whitespace (any Unicode whitespace), Unicode decimal digits, `_`
/// between two digits, a leading `+` or `-`, `1.`, `.5`, exponents, and `inf`, `infinity`
/// and `nan` in any case. Rejects hexadecimal, `1_`, `_1`, `1__0`, `1e`, `.`, `1,000` and
/// the empty string.
pub fn parse_float(s: &str) -> Option<f64> {
    // 1. CPython's _PyUnicode_TransformDecimalAndSpaceToASCII.
    let mut ascii: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.chars() {
        let cp = c as u32;
        if cp < 127 {
            ascii.push(cp as u8);
        } else if is_space(c) {
            ascii.push(b' ');
        } else {
            ascii.push(b'0' + decimal_value(c)?);
        }
    }
    // 2. Underscores: only between two digits (checked over the whole text).
    if ascii.contains(&b'_') {
        let mut kept = Vec::with_capacity(ascii.len());
        let mut prev = 0u8;
        for &b in &ascii {
            if b == b'_' {
                if !prev.is_ascii_digit() {
                    return None;
                }
            } else {
                if prev == b'_' && !b.is_ascii_digit() {
                    return None;
                }
                kept.push(b);
            }
            prev = b;
        }
        if prev == b'_' {
            return None;
        }
        ascii = kept;
    }
    // 3. Surrounding ASCII whitespace.
    let start = ascii.iter().position(|&b| !is_ascii_space(b))?;
    let end = ascii.iter().rposition(|&b| !is_ascii_space(b))? + 1;
    let body = &ascii[start..end];
    // 4. The number itself.
    let (negative, rest) = match body.first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    let lower = rest.to_ascii_lowercase();
    let magnitude = match lower.as_slice() {
        b"inf" | b"infinity" => f64::INFINITY,
        b"nan" => f64::NAN,
        _ => {
            if !is_decimal_literal(rest) {
                return None;
            }
            let text = std::str::from_utf8(rest).ok()?;
            text.parse::<f64>().ok()?
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `digits [. digits] [e [sign] digits]` or `. digits [...]`, with at least one mantissa digit.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == b.len()
}

/// Python's `repr(float)` (also what `print` and f-strings show): the shortest digits that
/// round-trip, in positional notation for 1e-4 <= |x| < 1e16 and scientific otherwise.
pub fn repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decpt = exp + 1;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else {
        let d = decpt as usize;
        if d >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', d - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..d]);
            out.push('.');
            out.push_str(&digits[d..]);
        }
    }
    out
}

/// Python's built-in `sum()` over floats, as CPython 3.12 and later compute it (Neumaier's
/// compensated summation). For 0/1 rewards it equals plain left-to-right addition.
pub fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut total = 0.0f64;
    let mut c = 0.0f64;
    for x in values {
        let t = total + x;
        if total.abs() >= x.abs() {
            c += (total - t) + x;
        } else {
            c += (x - t) + total;
        }
        total = t;
    }
    if c != 0.0 && c.is_finite() {
        total += c;
    }
    total
}

/// NumPy's `np.add.reduce` over a contiguous float64 array: the identity 0.0 plus a pairwise
/// sum (blocks of at most 128, eight accumulators). pandas' `Series.mean()` is this sum
/// (missing values counted as 0.0) divided by the number of values present.
pub fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise(values)
}

fn pairwise(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// pandas' `Series.mean()` of a float column with missing values: NaN when nothing is there.
pub fn pandas_mean(values: &[Option<f64>]) -> f64 {
    let filled: Vec<f64> = values
        .iter()
        .map(|v| v.filter(|x| !x.is_nan()).unwrap_or(0.0))
        .collect();
    let count = values.iter().flatten().filter(|x| !x.is_nan()).count();
    if count == 0 {
        f64::NAN
    } else {
        numpy_sum(&filled) / count as f64
    }
}

/// `math.comb(n, k)`: 0 when `k > n`; `None` only if it does not fit in 128 bits.
pub fn comb(n: u64, k: u64) -> Option<u128> {
    if k > n {
        return Some(0);
    }
    let k = k.min(n - k);
    let mut r: u128 = 1;
    for i in 0..k {
        r = r.checked_mul(u128::from(n - i))? / u128::from(i + 1);
    }
    Some(r)
}

/// `math.comb(c, k) / math.comb(n, k)` as Python evaluates it (integer true division,
/// correctly rounded). Exact whenever both coefficients are below 2^53, i.e. for every
/// trial count up to 56; `None` when `comb(n, k)` is zero.
pub fn comb_ratio(c: u64, n: u64, k: u64) -> Option<f64> {
    let num = comb(c, k);
    let den = comb(n, k);
    match (num, den) {
        (_, Some(0)) => None,
        (Some(a), Some(b)) => Some(a as f64 / b as f64),
        // Beyond 128 bits: fall back to logarithms (never reached for realistic trial counts).
        _ => {
            if k > c {
                return Some(0.0);
            }
            Some((ln_comb(c, k) - ln_comb(n, k)).exp())
        }
    }
}

fn ln_comb(n: u64, k: u64) -> f64 {
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// The success test both τ-bench generations use: `1 - 1e-6 <= reward <= 1 + 1e-6`.
pub fn is_success(reward: f64) -> bool {
    ((1.0 - 1e-6)..=(1.0 + 1e-6)).contains(&reward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_of_every_script_map_to_ascii() {
        assert_eq!(decimal_value('\u{663}'), Some(3));
        assert_eq!(decimal_value('\u{FF19}'), Some(9));
        assert_eq!(decimal_value('\u{B2}'), None); // superscript two is not a decimal digit
        assert_eq!(decimal_value('a'), None);
    }

    #[test]
    fn pairwise_matches_plain_addition_on_exact_values() {
        let v: Vec<f64> = (0..300).map(f64::from).collect();
        assert_eq!(numpy_sum(&v), 44850.0);
    }

    #[test]
    fn comb_is_exact() {
        assert_eq!(comb(5, 2), Some(10));
        assert_eq!(comb(2, 3), Some(0));
        assert_eq!(comb(60, 30), Some(118_264_581_564_861_424));
        assert_eq!(comb_ratio(2, 3, 2), Some(1.0 / 3.0));
    }
}
