package tmpl

import (
	"fmt"
	"reflect"
	"text/template/parse"
)

// builtin is a builtin function: it gets its argument nodes unevaluated,
// so and and or can stop at the first that decides.
type builtin func(s *state, dot reflect.Value, args []parse.Node, final reflect.Value) reflect.Value

// builtins are text/template's builtins that the pages use, with its
// semantics. The others (call, html, js, slice, urlquery) are left out: a
// template using one fails to parse.
var builtins map[string]builtin

// builtinNames lists the builtins for the parser, with print, printf and
// println (plain funcs, in stdFuncs).
var builtinNames = []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "printf", "println"}

// stdFuncs are builtins that are ordinary functions.
var stdFuncs = FuncMap{"print": fmt.Sprint, "printf": fmt.Sprintf, "println": fmt.Sprintln}

func init() {
	builtins = map[string]builtin{
		"and": andOr(false),
		"or":  andOr(true),
		"not": func(s *state, dot reflect.Value, args []parse.Node, final reflect.Value) reflect.Value {
			v := s.evalAll("not", dot, args, final, 1, 1)
			return reflect.ValueOf(!truth(v[0]))
		},
		"eq": compareWith("eq", func(s *state, a, b reflect.Value) bool { return s.eq(a, b) }),
		"ne": compareWith("ne", func(s *state, a, b reflect.Value) bool { return !s.eq(a, b) }),
		"lt": compareWith("lt", func(s *state, a, b reflect.Value) bool { return s.less(a, b) }),
		"le": compareWith("le", func(s *state, a, b reflect.Value) bool { return s.less(a, b) || s.eq(a, b) }),
		"gt": compareWith("gt", func(s *state, a, b reflect.Value) bool { return !s.less(a, b) && !s.eq(a, b) }),
		"ge": compareWith("ge", func(s *state, a, b reflect.Value) bool { return !s.less(a, b) }),
		"len": func(s *state, dot reflect.Value, args []parse.Node, final reflect.Value) reflect.Value {
			v, isNil := indirect(s.evalAll("len", dot, args, final, 1, 1)[0])
			if isNil {
				s.errorf("error calling len: len of nil pointer")
			}
			switch v.Kind() {
			case reflect.Array, reflect.Chan, reflect.Map, reflect.Slice, reflect.String:
				return reflect.ValueOf(v.Len())
			}
			s.errorf("error calling len: len of type %s", v.Type())
			return reflect.Value{}
		},
		"index": func(s *state, dot reflect.Value, args []parse.Node, final reflect.Value) reflect.Value {
			v := s.evalAll("index", dot, args, final, 1, -1)
			return s.index(v[0], v[1:])
		},
	}
}

// evalAll evaluates a builtin's arguments (and the pipeline's final
// value), checking their number (max -1: no limit).
func (s *state) evalAll(name string, dot reflect.Value, args []parse.Node, final reflect.Value, min, max int) []reflect.Value {
	var vs []reflect.Value
	for _, a := range args {
		if a.Type() == parse.NodeNil {
			vs = append(vs, reflect.Value{}) // eq x nil
			continue
		}
		vs = append(vs, s.evalArg(dot, nil, a))
	}
	if !isMissing(final) {
		vs = append(vs, final)
	}
	if len(vs) < min || max >= 0 && len(vs) > max {
		s.errorf("wrong number of args for %s: got %d", name, len(vs))
	}
	return vs
}

func truth(v reflect.Value) bool {
	t, _ := isTrue(indirectInterface(v))
	return t
}

// andOr returns the first argument that decides (false for and, true for
// or) without evaluating the rest, or the last one.
func andOr(isOr bool) builtin {
	return func(s *state, dot reflect.Value, args []parse.Node, final reflect.Value) reflect.Value {
		if len(args) == 0 && isMissing(final) {
			s.errorf("wrong number of args: want at least 1 got 0")
		}
		var v reflect.Value
		for _, a := range args {
			v = s.evalArg(dot, nil, a)
			if truth(v) == isOr {
				return v
			}
		}
		if !isMissing(final) {
			v = final
		}
		return v
	}
}

// compareWith builds a comparison builtin; eq takes several right-hand
// values and is true if any matches.
func compareWith(name string, f func(s *state, a, b reflect.Value) bool) builtin {
	return func(s *state, dot reflect.Value, args []parse.Node, final reflect.Value) reflect.Value {
		max := 2
		if name == "eq" {
			max = -1
		}
		v := s.evalAll(name, dot, args, final, 2, max)
		for _, b := range v[1:] {
			if f(s, indirectInterface(v[0]), indirectInterface(b)) {
				return reflect.ValueOf(true)
			}
		}
		return reflect.ValueOf(false)
	}
}

type kind int

const (
	invalidKind kind = iota
	boolKind
	intKind
	uintKind
	floatKind
	stringKind
)

func basicKind(v reflect.Value) kind {
	switch v.Kind() {
	case reflect.Bool:
		return boolKind
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intKind
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintKind
	case reflect.Float32, reflect.Float64:
		return floatKind
	case reflect.String:
		return stringKind
	}
	return invalidKind
}

func isNil(v reflect.Value) bool {
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return v.IsNil()
	}
	return false
}

// eq compares like text/template: basic kinds by value (signed and
// unsigned integers with each other), other comparable values with ==.
func (s *state) eq(a, b reflect.Value) bool {
	ka, kb := basicKind(a), basicKind(b)
	if ka != kb {
		switch {
		case ka == intKind && kb == uintKind:
			return a.Int() >= 0 && uint64(a.Int()) == b.Uint()
		case ka == uintKind && kb == intKind:
			return b.Int() >= 0 && a.Uint() == uint64(b.Int())
		case a.IsValid() && b.IsValid():
			s.errorf("error calling eq: incompatible types for comparison")
		}
		return false // one is nil
	}
	switch ka {
	case boolKind:
		return a.Bool() == b.Bool()
	case intKind:
		return a.Int() == b.Int()
	case uintKind:
		return a.Uint() == b.Uint()
	case floatKind:
		return a.Float() == b.Float()
	case stringKind:
		return a.String() == b.String()
	}
	if isNil(a) || isNil(b) {
		return isNil(a) == isNil(b)
	}
	if a.Type() != b.Type() || !a.Type().Comparable() {
		s.errorf("error calling eq: non-comparable types %s and %s", a.Type(), b.Type())
	}
	return a.Interface() == b.Interface()
}

// less orders numbers and strings like text/template's lt.
func (s *state) less(a, b reflect.Value) bool {
	ka, kb := basicKind(a), basicKind(b)
	if ka != kb {
		switch {
		case ka == intKind && kb == uintKind:
			return a.Int() < 0 || uint64(a.Int()) < b.Uint()
		case ka == uintKind && kb == intKind:
			return b.Int() >= 0 && a.Uint() < uint64(b.Int())
		}
		s.errorf("incompatible types for comparison")
	}
	switch ka {
	case intKind:
		return a.Int() < b.Int()
	case uintKind:
		return a.Uint() < b.Uint()
	case floatKind:
		return a.Float() < b.Float()
	case stringKind:
		return a.String() < b.String()
	}
	s.errorf("invalid type for comparison")
	return false
}

// index is text/template's index: maps give their element type's zero
// value for a missing key, slices, arrays and strings check bounds.
func (s *state) index(item reflect.Value, indexes []reflect.Value) reflect.Value {
	item = indirectInterface(item)
	if !item.IsValid() {
		s.errorf("error calling index: index of untyped nil")
	}
	for _, ix := range indexes {
		ix = indirectInterface(ix)
		var isNil bool
		if item, isNil = indirect(item); isNil {
			s.errorf("error calling index: index of nil pointer")
		}
		switch item.Kind() {
		case reflect.Array, reflect.Slice, reflect.String:
			var x int64
			switch basicKind(ix) {
			case intKind:
				x = ix.Int()
			case uintKind:
				x = int64(ix.Uint())
			default:
				s.errorf("error calling index: cannot index slice/array with type %s", ix.Type())
			}
			if x < 0 || int(x) < 0 || int(x) >= item.Len() {
				s.errorf("error calling index: index out of range: %d", x)
			}
			item = item.Index(int(x))
		case reflect.Map:
			kt := item.Type().Key()
			if !ix.IsValid() || !ix.Type().AssignableTo(kt) {
				if ix.IsValid() && ix.Type().ConvertibleTo(kt) && basicKind(ix) != invalidKind && basicKind(ix) == basicKind(reflect.Zero(kt)) {
					ix = ix.Convert(kt)
				} else {
					s.errorf("error calling index: value has type %v; should be %s", ix, kt)
				}
			}
			if x := item.MapIndex(ix); x.IsValid() {
				item = x
			} else {
				item = reflect.Zero(item.Type().Elem())
			}
		default:
			s.errorf("error calling index: can't index item of type %s", item.Type())
		}
	}
	return item
}
