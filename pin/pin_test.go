package pin

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream returns a deterministic byte stream for Generate.
func stream(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func TestGenerateShape(t *testing.T) {
	r := stream(1)
	for range 1000 {
		p, err := Generate(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != Digits {
			t.Fatalf("Generate = %q, want %d digits", p, Digits)
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				t.Fatalf("Generate = %q: not all ASCII digits", p)
			}
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	a, _ := Generate(stream(7))
	b, _ := Generate(stream(7))
	c, _ := Generate(stream(8))
	if a != b {
		t.Errorf("same stream gave %q and %q", a, b)
	}
	if a == c {
		t.Errorf("different streams both gave %q", a)
	}
	// Leading zeros are kept: 0 is the PIN "000000".
	zero, err := Generate(bytes.NewReader([]byte{0, 0, 0}))
	if err != nil || zero != "000000" {
		t.Errorf("Generate(zeros) = %q, %v; want 000000", zero, err)
	}
}

func TestGenerateReadError(t *testing.T) {
	_, err := Generate(bytes.NewReader([]byte{1}))
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Generate(short reader) error = %v, want one wrapping ErrUnexpectedEOF", err)
	}
}

// TestGenerateUniform checks every digit position against a chi-squared
// bound: with 9 degrees of freedom, 40 is far beyond p = 0.00001, so a
// fair generator essentially never fails and a biased one (a modulo on
// a 20-bit value, a fixed digit) does.
func TestGenerateUniform(t *testing.T) {
	const n = 50_000
	r := stream(42)
	var counts [Digits][10]int
	seen := map[string]bool{}
	for range n {
		p, err := Generate(r)
		if err != nil {
			t.Fatal(err)
		}
		seen[p] = true
		for i := range Digits {
			counts[i][p[i]-'0']++
		}
	}
	exp := float64(n) / 10
	for i, c := range counts {
		chi := 0.0
		for _, o := range c {
			d := float64(o) - exp
			chi += d * d / exp
		}
		if chi > 40 {
			t.Errorf("digit %d: chi² = %.1f over counts %v", i, chi, c)
		}
	}
	// 50k draws from 10^6 values: about 1.2k collisions are expected.
	if len(seen) < n-2000 {
		t.Errorf("only %d distinct PINs in %d draws", len(seen), n)
	}
}

func TestHashBindsEveryField(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, KeySize)
	base := Hash(key, "02:00:00:00:00:01", "+97433123456", "123456")
	if len(base) != 32 {
		t.Fatalf("hash length %d, want 32", len(base))
	}
	if !bytes.Equal(base, Hash(key, "02:00:00:00:00:01", "+97433123456", "123456")) {
		t.Fatal("Hash is not deterministic")
	}
	variants := map[string][]byte{
		"mac":   Hash(key, "02:00:00:00:00:02", "+97433123456", "123456"),
		"phone": Hash(key, "02:00:00:00:00:01", "+97433123457", "123456"),
		"pin":   Hash(key, "02:00:00:00:00:01", "+97433123456", "123457"),
		"key":   Hash(bytes.Repeat([]byte{0x43}, KeySize), "02:00:00:00:00:01", "+97433123456", "123456"),
	}
	for name, h := range variants {
		if bytes.Equal(h, base) {
			t.Errorf("changing the %s does not change the hash", name)
		}
	}
}

func TestHashNoConcatenationAmbiguity(t *testing.T) {
	key := make([]byte, KeySize)
	// Each pair concatenates to the same bytes with or without a plain
	// separator.
	pairs := [][2][3]string{
		{{"ab", "c", "d"}, {"a", "bc", "d"}},
		{{"a", "bc", "d"}, {"a", "b", "cd"}},
		{{"a|", "b", "c"}, {"a", "|b", "c"}},
		{{"1:a|", "b", ""}, {"", "1:a|b", ""}},
		{{"", "", "123456"}, {"123456", "", ""}},
		{{"a", "", "b"}, {"", "a", "b"}},
	}
	for _, p := range pairs {
		x, y := p[0], p[1]
		if bytes.Equal(Hash(key, x[0], x[1], x[2]), Hash(key, y[0], y[1], y[2])) {
			t.Errorf("Hash%q == Hash%q", x, y)
		}
	}
}

func TestCheck(t *testing.T) {
	key := bytes.Repeat([]byte{9}, KeySize)
	stored := Hash(key, "02:00:00:00:00:01", "+97433123456", "000123")
	cases := []struct {
		name            string
		key             []byte
		stored          []byte
		mac, phone, pin string
		want            bool
	}{
		{"match", key, stored, "02:00:00:00:00:01", "+97433123456", "000123", true},
		{"wrong pin", key, stored, "02:00:00:00:00:01", "+97433123456", "000124", false},
		{"pin without leading zeros", key, stored, "02:00:00:00:00:01", "+97433123456", "123", false},
		{"other device", key, stored, "02:00:00:00:00:02", "+97433123456", "000123", false},
		{"other phone", key, stored, "02:00:00:00:00:01", "+97455123456", "000123", false},
		{"other key", make([]byte, KeySize), stored, "02:00:00:00:00:01", "+97433123456", "000123", false},
		{"empty stored", key, nil, "02:00:00:00:00:01", "+97433123456", "000123", false},
		{"truncated stored", key, stored[:16], "02:00:00:00:00:01", "+97433123456", "000123", false},
	}
	for _, c := range cases {
		if got := Check(c.key, c.stored, c.mac, c.phone, c.pin); got != c.want {
			t.Errorf("%s: Check = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClean(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"123456", "123456", true},
		{"000000", "000000", true},
		{" 123 456 ", "123456", true},
		{"123-456", "123456", true},
		{"123\u00a0456", "123456", true},
		{"١٢٣٤٥٦", "123456", true},
		{"٠٠٠٩٩٩", "000999", true},
		{"۱۲۳۴۵۶", "123456", true}, // Persian
		{"۴۵۶٤٥٦", "456456", true}, // Persian 4-6 then Arabic-Indic 4-6
		{"12٣4۵6", "123456", true},
		{"", "", false},
		{"      ", "", false},
		{"12345", "", false},
		{"1234567", "", false},
		{"١٢٣٤٥٦٧", "", false},
		{"12345a", "", false},
		{"12345\t6", "", false},
		{"123456\n", "", false},
		{"１２３４５６", "", false},  // full-width digits are not expected on a PIN pad
		{"१२३४५६", "", false},  // Devanagari
		{"12345٫6", "", false}, // Arabic decimal separator
		{"+123456", "", false},
		{"123456\x00", "", false},
		{"\xff23456", "", false},
	}
	for _, c := range cases {
		got, ok := Clean(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("Clean(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"123456", " ١٢٣ ٤٥٦ ", "۱۲۳۴۵۶", "12-34-56", "1234567", "abc", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := Clean(in)
		if !ok {
			return
		}
		if len(got) != Digits {
			t.Fatalf("Clean(%q) = %q, want %d digits", in, got, Digits)
		}
		for _, c := range []byte(got) {
			if c < '0' || c > '9' {
				t.Fatalf("Clean(%q) = %q: not ASCII digits", in, got)
			}
		}
		if again, ok := Clean(got); !ok || again != got {
			t.Fatalf("Clean is not idempotent: %q -> %q -> %q, %v", in, got, again, ok)
		}
		// Every accepted rune is a digit or a separator.
		for _, r := range in {
			if !strings.ContainsRune("0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹ -\u00a0", r) {
				t.Fatalf("Clean(%q) accepted rune %U", in, r)
			}
		}
	})
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pin.key")
	k1, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(k1) != KeySize {
		t.Fatalf("key length %d", len(k1))
	}
	if bytes.Equal(k1, make([]byte, KeySize)) {
		t.Fatal("key is all zeros")
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatalf("reuse: %v", err)
	}
	if !bytes.Equal(k1, k2) {
		t.Error("second call made a new key instead of reusing the file")
	}
	k3, err := LoadOrCreateKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1, k3) {
		t.Error("two installs got the same key")
	}
}

func TestLoadOrCreateKeyWrongSize(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 16, KeySize + 1} {
		p := filepath.Join(dir, "short.key")
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKey(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "want 32 bytes") {
			t.Errorf("%d-byte key: error = %v, want one naming the file and the size", n, err)
		}
		b, _ := os.ReadFile(p)
		if len(b) != n {
			t.Errorf("%d-byte key was rewritten to %d bytes", n, len(b))
		}
	}
}

func TestLoadOrCreateKeyUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the key should be: neither readable as a file nor
	// missing.
	p := filepath.Join(dir, "key")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(p); err == nil {
		t.Error("LoadOrCreateKey(directory) succeeded")
	}
	if _, err := LoadOrCreateKey(filepath.Join(dir, "missing-dir", "key")); err == nil || !strings.Contains(err.Error(), "creating PIN key") {
		t.Errorf("LoadOrCreateKey(in missing dir) = %v, want a creating error", err)
	}
}
