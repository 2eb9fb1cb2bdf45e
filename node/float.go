package node

import (
	"math/big"
	"strings"

	"github.com/starlingcache/starling/transport"
)

// INCRBYFLOAT's arithmetic. Redis parses both numbers with strtold and
// adds them as C long doubles, which on x86-64 carry a 64-bit mantissa,
// then prints the sum with 17 decimals and trims the trailing zeros. Doing
// the same at that precision (not float64's 53 bits) is what makes 0.1
// plus 0.2 come out "0.3", as Redis users expect, rather than
// "0.30000000000000004".
const (
	// longDoublePrec is the mantissa of an x87 long double.
	longDoublePrec = 64
	// longDoubleMaxExp is the binary exponent (big.Float's, mantissa in
	// [0.5, 1)) past which a long double is infinite; longDoubleMinExp the
	// one below which it is subnormal, holding multiples of
	// 2^longDoubleTinyExp only.
	longDoubleMaxExp  = 16384
	longDoubleMinExp  = -16381
	longDoubleTinyExp = -16445
	// maxFloatText is Redis's MAX_LONG_DOUBLE_CHARS: longer text is not a
	// number to it.
	maxFloatText = 5 * 1024
	// Decimal exponents of a leading digit past which a number certainly
	// overflows a long double (about 1.19e4932) or rounds to zero (below
	// half of about 3.6e-4951): the exact parse is skipped for them, so
	// that "1e999999999" costs nothing.
	maxDecimalExp = 4933
	minDecimalExp = -4952
	// tinyPrintExp: a sum below 2^tinyPrintExp (3.5e-18) prints as "0"
	// with 17 decimals, and printing it digit by digit would take
	// milliseconds for numbers near the long double's smallest.
	tinyPrintExp = -58
)

// parseLongDouble parses b as Redis's string2ld (strtold) does: the whole
// text, with no surrounding space, is a decimal number, optionally signed
// and with an exponent, or a hexadecimal one ("0x1.8p3"), or "inf" or
// "infinity" in any case (which then make any sum infinite, an error). It
// rounds to the nearest long double, ties to even, and refuses NaN and
// numbers that overflow a long double or round to zero, as strtold's
// range errors make Redis do.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) >= maxFloatText {
		return nil, false
	}
	s := string(b)
	neg := s[0] == '-'
	body := s
	if s[0] == '-' || s[0] == '+' {
		body = s[1:]
	}
	if lower := strings.ToLower(body); lower == "inf" || lower == "infinity" {
		return new(big.Float).SetInf(neg), true
	}
	if len(body) > 1 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		// A binary mantissa and exponent, read exactly (four bits a
		// digit). Base 0 is what reads the prefix; it would also take
		// digit separators, which strtold does not.
		if strings.IndexByte(body, '_') >= 0 {
			return nil, false
		}
		x, _, err := big.ParseFloat(s, 0, uint(4*len(s)+longDoublePrec), big.ToNearestEven)
		if err != nil {
			return nil, false
		}
		if x.IsInf() || x.Sign() == 0 {
			return x.SetPrec(longDoublePrec), true
		}
		// Out of range either way before rounding (below half the
		// smallest step it rounds to zero): refused without building the
		// exact fraction, whose size grows with the exponent.
		if e := x.MantExp(nil); e > longDoubleMaxExp || e < longDoubleTinyExp {
			return nil, false
		}
		exact := func() *big.Rat { r, _ := x.Rat(nil); return r }
		return nearestLongDouble(exact, new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Set(x))
	}
	r, ok := parseDecimal(body)
	if !ok {
		return nil, false
	}
	if neg {
		r.Neg(r)
	}
	exact := func() *big.Rat { return r }
	return nearestLongDouble(exact, new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).SetRat(r))
}

// parseDecimal reads digits [. digits] [e|E [sign] digits], with at least
// one mantissa digit, as an exact fraction. A number whose leading digit
// sits past maxDecimalExp or minDecimalExp is out of range and refused
// without building it.
func parseDecimal(s string) (*big.Rat, bool) {
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
		if exp == "" {
			return nil, false
		}
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	digits := intPart + frac
	if digits == "" || !allDigits(digits) {
		return nil, false
	}
	e, ok := parseExponent(exp)
	if !ok {
		return nil, false
	}
	lead := strings.IndexFunc(digits, func(c rune) bool { return c != '0' })
	if lead < 0 {
		return new(big.Rat), true // zero, whatever the exponent
	}
	// The leading digit's decimal exponent; e is saturated, so this
	// cannot overflow.
	if at := e + int64(len(intPart)-lead-1); at > maxDecimalExp || at < minDecimalExp {
		return nil, false
	}
	n, _ := new(big.Int).SetString(digits[lead:], 10)
	scale := e - int64(len(frac))
	pow := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs64(scale)), nil)
	if scale >= 0 {
		return new(big.Rat).SetInt(n.Mul(n, pow)), true
	}
	return new(big.Rat).SetFrac(n, pow), true
}

// parseExponent reads an optionally signed decimal exponent ("" is 0),
// saturating far beyond any exponent that matters.
func parseExponent(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	neg := s[0] == '-'
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" || !allDigits(s) {
		return 0, false
	}
	var e int64
	for _, c := range s {
		e = min(e*10+int64(c-'0'), 1<<40)
	}
	if neg {
		e = -e
	}
	return e, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// nearestLongDouble is the long double nearest to a number r, ties to
// even, given f, r rounded to 64 bits, and exact, which returns r itself
// (built only when needed). f is the answer unless it overflows (then
// none, as strtold's range error makes Redis refuse it) or r is
// subnormal, where a long double holds only multiples of
// 2^longDoubleTinyExp. A number that rounds to zero there is refused too.
// The grid's step is the same on both sides of the smallest normal
// number, so a subnormal r that f rounded up to it ends there on the grid
// as well.
func nearestLongDouble(exact func() *big.Rat, f *big.Float) (*big.Float, bool) {
	if f.Sign() == 0 {
		return f, true
	}
	exp := f.MantExp(nil)
	if exp > longDoubleMaxExp {
		return nil, false
	}
	if exp >= longDoubleMinExp {
		return f, true
	}
	step := new(big.Int).Lsh(big.NewInt(1), -longDoubleTinyExp)
	q := new(big.Rat).Mul(exact(), new(big.Rat).SetInt(step))
	n := roundHalfEven(q)
	if n.Sign() == 0 {
		return nil, false
	}
	out := new(big.Float).SetPrec(longDoublePrec).SetInt(n)
	return out.SetMantExp(out, longDoubleTinyExp), true
}

// roundHalfEven is the integer nearest to q, ties to even.
func roundHalfEven(q *big.Rat) *big.Int {
	num, den := new(big.Int).Abs(q.Num()), q.Denom()
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if c := rem.Lsh(rem, 1).Cmp(den); c > 0 || c == 0 && quo.Bit(0) == 1 {
		quo.Add(quo, big.NewInt(1))
	}
	if q.Sign() < 0 {
		quo.Neg(quo)
	}
	return quo
}

// incrFloat adds the increment d (parseLongDouble of the request's text)
// to the stored value cur (nil when the key is absent) and returns the
// sum's text as INCRBYFLOAT stores it.
func incrFloat(cur []byte, d *big.Float) ([]byte, error) {
	v := new(big.Float).SetPrec(longDoublePrec)
	if cur != nil {
		var ok bool
		if v, ok = parseLongDouble(cur); !ok {
			return nil, transport.ErrNotFloat
		}
	}
	if v.IsInf() || d.IsInf() {
		return nil, transport.ErrNotFinite
	}
	sum := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Add(v, d)
	if sum.Sign() != 0 && sum.MantExp(nil) > longDoubleMaxExp {
		return nil, transport.ErrNotFinite
	}
	return formatLongDouble(sum), nil
}

// formatLongDouble prints f as Redis's ld2string does for INCRBYFLOAT:
// "%.17Lf", then without trailing zeros (and a bare trailing point), and
// "-0" as "0".
func formatLongDouble(f *big.Float) []byte {
	if f.Sign() == 0 || f.MantExp(nil) <= tinyPrintExp {
		return []byte("0")
	}
	s := f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return []byte(s)
}
