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
	// longDoubleMaxExp and longDoubleMinExp bound the binary exponents
	// (big.Float's, mantissa in [0.5, 1)) a long double can hold: past the
	// first it is infinite, below the second it underflows to zero, which
	// strtold reports as a range error and Redis refuses.
	longDoubleMaxExp = 16384
	longDoubleMinExp = -16444
	// maxFloatText is Redis's MAX_LONG_DOUBLE_CHARS: longer text is not a
	// number to it.
	maxFloatText = 5 * 1024
)

// parseLongDouble parses b as Redis's string2ld (strtold) does: the whole
// text, with no surrounding space, is a decimal number, optionally signed
// and with an exponent, or a hexadecimal one ("0x1.8p3"), or "inf" or
// "infinity" in any case (which then make any sum infinite, an error).
// NaN is refused, as is a number too small for a long double.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) >= maxFloatText {
		return nil, false
	}
	s := string(b)
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 {
		return nil, false
	}
	if lower := strings.ToLower(body); lower == "inf" || lower == "infinity" {
		return new(big.Float).SetInf(s[0] == '-'), true
	}
	// Base 0 reads a 0x prefix as strtold does, but also 0b, 0o and
	// digit separators, which strtold does not: only hexadecimal text
	// goes that way.
	base := 10
	if len(body) > 1 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		base = 0
	}
	if strings.IndexByte(s, '_') >= 0 {
		return nil, false
	}
	f, _, err := big.ParseFloat(s, base, longDoublePrec, big.ToNearestEven)
	if err != nil {
		return nil, false
	}
	if !f.IsInf() && f.Sign() != 0 && f.MantExp(nil) < longDoubleMinExp {
		return nil, false // underflows a long double
	}
	return f, true
}

// incrFloat adds the decimal increment to the stored value cur (nil when
// the key is absent) and returns the sum's text as INCRBYFLOAT stores it.
func incrFloat(cur, incr []byte) ([]byte, error) {
	d, ok := parseLongDouble(incr)
	if !ok {
		return nil, transport.ErrNotFloat
	}
	v := new(big.Float).SetPrec(longDoublePrec)
	if cur != nil {
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
