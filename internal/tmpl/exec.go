// Package tmpl runs the portal's and the console's HTML templates without
// text/template's executor.
//
// Why: text/template looks up every {{.Name}} with reflect's MethodByName,
// and a binary that can call MethodByName with a name known only at run
// time makes the Go linker keep every exported method of every type that
// reaches an interface: 2.5 MiB of the 20 MiB router binary (issue 14).
// This executor reads struct fields and map keys only; anything a page
// needs computed is a template func. Templates are the same language: the
// same parser (text/template/parse), the same semantics for if, with,
// range, template, variables, pipelines and the builtins the pages use.
//
// Escaping stays html/template's: its contextual escaper runs at build
// time (package tmpl/escape, from the packages' tests and go generate)
// and writes the escaped templates, with its escaping functions spelt
// out in every action, next to the sources. This package provides those
// functions (escapers.go) and refuses to parse a template that calls
// one it does not have.
package tmpl

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"text/template/parse"
)

// FuncMap maps names to functions, as in text/template: each returns one
// value, or a value and an error.
type FuncMap map[string]any

// Set is a group of templates that can call each other, parsed from one
// source of {{define}}s.
type Set struct {
	trees map[string]*parse.Tree
	funcs map[string]reflect.Value
	bound map[string]bool
}

// Parse parses src (an escaped page set, see package tmpl/escape) with
// funcs and this package's escapers. bound names the funcs that every
// Execute supplies itself, per request (a page's language, say).
func Parse(name, src string, funcs FuncMap, bound ...string) (*Set, error) {
	s := &Set{funcs: map[string]reflect.Value{}, bound: map[string]bool{}}
	known := map[string]any{}
	add := func(m FuncMap) error {
		for k, f := range m {
			v := reflect.ValueOf(f)
			if v.Kind() != reflect.Func {
				return fmt.Errorf("parsing %s: func %s is a %s, not a function", name, k, v.Kind())
			}
			if err := goodFunc(k, v.Type()); err != nil {
				return fmt.Errorf("parsing %s: %w", name, err)
			}
			s.funcs[k] = v
			known[k] = f
		}
		return nil
	}
	if err := add(escapers); err != nil {
		return nil, err
	}
	if err := add(stdFuncs); err != nil {
		return nil, err
	}
	if err := add(funcs); err != nil {
		return nil, err
	}
	for _, b := range builtinNames {
		known[b] = true
	}
	for _, b := range bound {
		s.bound[b] = true
		known[b] = true
	}
	trees, err := parse.Parse(name, src, "{{", "}}", known)
	if err != nil {
		return nil, err
	}
	s.trees = trees
	return s, nil
}

// Names returns the templates in s, sorted.
func (s *Set) Names() []string {
	var names []string
	for n, t := range s.trees {
		if t.Root != nil && len(t.Root.Nodes) > 0 {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Execute runs template name with data as dot, writing to w. bound holds
// this execution's values of the funcs Parse was told are bound; all of
// them must be given.
func (s *Set) Execute(w io.Writer, name string, data any, bound FuncMap) (err error) {
	t := s.trees[name]
	if t == nil {
		return fmt.Errorf("template %q not defined", name)
	}
	st := &state{set: s, w: w, tree: t, bound: map[string]reflect.Value{}}
	for k := range s.bound {
		f, ok := bound[k]
		if !ok {
			return fmt.Errorf("executing %q: func %s not supplied", name, k)
		}
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Func {
			return fmt.Errorf("executing %q: func %s is a %s, not a function", name, k, v.Kind())
		}
		if err := goodFunc(k, v.Type()); err != nil {
			return fmt.Errorf("executing %q: %w", name, err)
		}
		st.bound[k] = v
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(execError)
			if !ok {
				panic(r)
			}
			err = e.err
		}
	}()
	dot := reflect.ValueOf(data)
	st.vars = []variable{{"$", dot}}
	st.walk(dot, t.Root)
	return nil
}

// maxDepth bounds template calls: the pages nest two deep; a template
// that calls itself without end fails instead of exhausting the stack.
const maxDepth = 100

type variable struct {
	name  string
	value reflect.Value
}

// state is one execution.
type state struct {
	set   *Set
	w     io.Writer
	tree  *parse.Tree
	node  parse.Node // for error positions
	vars  []variable
	depth int
	bound map[string]reflect.Value
}

// execError carries an execution error through panics to Execute.
type execError struct{ err error }

var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
	missingVal  = reflect.ValueOf(missingType{})
	errorType   = reflect.TypeFor[error]()
	stringer    = reflect.TypeFor[fmt.Stringer]()
)

// missingType marks "no final value" in a pipeline.
type missingType struct{}

func isMissing(v reflect.Value) bool { return v.IsValid() && v.Type() == missingVal.Type() }

func (s *state) at(n parse.Node) { s.node = n }

func (s *state) errorf(format string, args ...any) {
	where := s.tree.ParseName
	if s.node != nil {
		loc, ctx := s.tree.ErrorContext(s.node)
		where = loc + ": executing " + fmt.Sprintf("%q at <%s>", s.tree.Name, doublePercent(ctx))
	}
	panic(execError{fmt.Errorf("template: %s: %w", where, fmt.Errorf(format, args...))})
}

func doublePercent(s string) string { return strings.ReplaceAll(s, "%", "%%") }

func (s *state) mark() int { return len(s.vars) }

func (s *state) pop(mark int) { s.vars = s.vars[:mark] }

func (s *state) push(name string, v reflect.Value) { s.vars = append(s.vars, variable{name, v}) }

// setVar overwrites the nearest variable called name.
func (s *state) setVar(name string, v reflect.Value) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return
		}
	}
	s.errorf("undefined variable: %s", name)
}

// setTopVar overwrites the n-th variable from the top of the stack.
func (s *state) setTopVar(n int, v reflect.Value) { s.vars[len(s.vars)-n].value = v }

func (s *state) varValue(name string) reflect.Value {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value
		}
	}
	s.errorf("undefined variable: %s", name)
	return reflect.Value{}
}

func (s *state) walk(dot reflect.Value, node parse.Node) {
	s.at(node)
	switch n := node.(type) {
	case *parse.ActionNode:
		val := s.evalPipeline(dot, n.Pipe)
		if len(n.Pipe.Decl) == 0 {
			s.printValue(n, val)
		}
	case *parse.BreakNode:
		panic(errBreak)
	case *parse.ContinueNode:
		panic(errContinue)
	case *parse.CommentNode:
	case *parse.IfNode:
		s.walkIfOrWith(parse.NodeIf, dot, n.Pipe, n.List, n.ElseList)
	case *parse.ListNode:
		for _, c := range n.Nodes {
			s.walk(dot, c)
		}
	case *parse.RangeNode:
		s.walkRange(dot, n)
	case *parse.TemplateNode:
		s.walkTemplate(dot, n)
	case *parse.TextNode:
		if _, err := s.w.Write(n.Text); err != nil {
			panic(execError{fmt.Errorf("writing page: %w", err)})
		}
	case *parse.WithNode:
		s.walkIfOrWith(parse.NodeWith, dot, n.Pipe, n.List, n.ElseList)
	default:
		s.errorf("unknown node: %s", node)
	}
}

func (s *state) walkIfOrWith(typ parse.NodeType, dot reflect.Value, pipe *parse.PipeNode, list, elseList *parse.ListNode) {
	defer s.pop(s.mark())
	val := s.evalPipeline(dot, pipe)
	truth, ok := isTrue(indirectInterface(val))
	if !ok {
		s.errorf("if/with can't use %v", val)
	}
	switch {
	case truth && typ == parse.NodeWith:
		s.walk(val, list)
	case truth:
		s.walk(dot, list)
	case elseList != nil:
		s.walk(dot, elseList)
	}
}

func (s *state) walkRange(dot reflect.Value, r *parse.RangeNode) {
	s.at(r)
	defer func() {
		if e := recover(); e != nil && e != errBreak {
			panic(e)
		}
	}()
	defer s.pop(s.mark())
	val, _ := indirect(s.evalPipeline(dot, r.Pipe))
	mark := s.mark()
	one := func(index, elem reflect.Value) {
		if len(r.Pipe.Decl) > 0 {
			if r.Pipe.IsAssign {
				if len(r.Pipe.Decl) > 1 {
					s.setVar(r.Pipe.Decl[0].Ident[0], index)
				} else {
					s.setVar(r.Pipe.Decl[0].Ident[0], elem)
				}
			} else {
				s.setTopVar(1, elem)
			}
		}
		if len(r.Pipe.Decl) > 1 {
			if r.Pipe.IsAssign {
				s.setVar(r.Pipe.Decl[1].Ident[0], elem)
			} else {
				s.setTopVar(2, index)
			}
		}
		defer s.pop(mark)
		defer func() {
			if e := recover(); e != nil && e != errContinue {
				panic(e)
			}
		}()
		s.walk(elem, r.List)
	}
	switch val.Kind() {
	case reflect.Array, reflect.Slice:
		if val.Len() == 0 {
			break
		}
		for i := 0; i < val.Len(); i++ {
			one(reflect.ValueOf(i), val.Index(i))
		}
		return
	case reflect.Map:
		if val.Len() == 0 {
			break
		}
		for _, k := range s.sortedKeys(val) {
			one(k, val.MapIndex(k))
		}
		return
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if len(r.Pipe.Decl) > 1 {
			s.errorf("can't use %v to iterate over more than one variable", val)
		}
		if val.Int() <= 0 {
			break
		}
		for i := range val.Int() {
			v := reflect.ValueOf(i).Convert(val.Type())
			one(v, v)
		}
		return
	case reflect.Invalid:
		// A nil map or slice: like an empty one.
	default:
		s.errorf("range can't iterate over %v", val)
	}
	if r.ElseList != nil {
		s.walk(dot, r.ElseList)
	}
}

// sortedKeys returns a map's keys in order, as text/template ranges over
// maps: strings, numbers and booleans only (the pages need no others).
func (s *state) sortedKeys(m reflect.Value) []reflect.Value {
	keys := m.MapKeys()
	var cmp func(a, b reflect.Value) int
	switch m.Type().Key().Kind() {
	case reflect.String:
		cmp = func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		cmp = func(a, b reflect.Value) int { return compare(a.Int(), b.Int()) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		cmp = func(a, b reflect.Value) int { return compare(a.Uint(), b.Uint()) }
	case reflect.Float32, reflect.Float64:
		cmp = func(a, b reflect.Value) int { return compare(a.Float(), b.Float()) }
	case reflect.Bool:
		cmp = func(a, b reflect.Value) int {
			return compare(map[bool]int{true: 1}[a.Bool()], map[bool]int{true: 1}[b.Bool()])
		}
	default:
		s.errorf("range over a map keyed by %s: unsupported", m.Type().Key())
	}
	slices.SortFunc(keys, cmp)
	return keys
}

func compare[T int64 | uint64 | float64 | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *state) walkTemplate(dot reflect.Value, t *parse.TemplateNode) {
	s.at(t)
	tree := s.set.trees[t.Name]
	if tree == nil {
		s.errorf("template %q not defined", t.Name)
	}
	if s.depth == maxDepth {
		s.errorf("exceeded maximum template depth (%v)", maxDepth)
	}
	dot = s.evalPipeline(dot, t.Pipe)
	ns := *s
	ns.depth++
	ns.tree = tree
	// No dynamic scoping: a called template sees only its dot as $.
	ns.vars = []variable{{"$", dot}}
	ns.walk(dot, tree.Root)
}

func (s *state) evalPipeline(dot reflect.Value, pipe *parse.PipeNode) (value reflect.Value) {
	if pipe == nil {
		return
	}
	s.at(pipe)
	value = missingVal
	for _, cmd := range pipe.Cmds {
		value = s.evalCommand(dot, cmd, value)
		// An interface{} holds the thing to work on.
		if value.Kind() == reflect.Interface && value.Type().NumMethod() == 0 {
			value = value.Elem()
		}
	}
	for _, v := range pipe.Decl {
		if pipe.IsAssign {
			s.setVar(v.Ident[0], value)
		} else {
			s.push(v.Ident[0], value)
		}
	}
	return value
}

func (s *state) notAFunction(args []parse.Node, final reflect.Value) {
	if len(args) > 1 || !isMissing(final) {
		s.errorf("can't give argument to non-function %s", args[0])
	}
}

func (s *state) evalCommand(dot reflect.Value, cmd *parse.CommandNode, final reflect.Value) reflect.Value {
	first := cmd.Args[0]
	switch n := first.(type) {
	case *parse.FieldNode:
		return s.evalFieldChain(dot, dot, n, n.Ident, cmd.Args, final)
	case *parse.ChainNode:
		return s.evalChainNode(dot, n, cmd.Args, final)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, cmd.Args, final)
	case *parse.PipeNode:
		s.notAFunction(cmd.Args, final)
		return s.evalPipeline(dot, n)
	case *parse.VariableNode:
		return s.evalVariableNode(dot, n, cmd.Args, final)
	}
	s.at(first)
	s.notAFunction(cmd.Args, final)
	switch w := first.(type) {
	case *parse.BoolNode:
		return reflect.ValueOf(w.True)
	case *parse.DotNode:
		return dot
	case *parse.NilNode:
		s.errorf("nil is not a command")
	case *parse.NumberNode:
		return s.idealConstant(w)
	case *parse.StringNode:
		return reflect.ValueOf(w.Text)
	}
	s.errorf("can't evaluate command %q", first)
	return reflect.Value{}
}

// idealConstant gives an untyped number constant its default Go type.
func (s *state) idealConstant(c *parse.NumberNode) reflect.Value {
	s.at(c)
	switch {
	case c.IsComplex:
		return reflect.ValueOf(c.Complex128)
	case c.IsFloat && strings.ContainsAny(c.Text, ".eEpP") && !strings.HasPrefix(c.Text, "0x") && !strings.HasPrefix(c.Text, "0X"):
		return reflect.ValueOf(c.Float64)
	case c.IsInt:
		n := int(c.Int64)
		if int64(n) != c.Int64 {
			s.errorf("%s overflows int", c.Text)
		}
		return reflect.ValueOf(n)
	case c.IsUint:
		s.errorf("%s overflows int", c.Text)
	}
	return reflect.Value{}
}

func (s *state) evalChainNode(dot reflect.Value, chain *parse.ChainNode, args []parse.Node, final reflect.Value) reflect.Value {
	s.at(chain)
	if len(chain.Field) == 0 {
		s.errorf("internal error: no fields in evalChainNode")
	}
	if chain.Node.Type() == parse.NodeNil {
		s.errorf("indirection through explicit nil in %s", chain)
	}
	pipe := s.evalArg(dot, nil, chain.Node)
	return s.evalFieldChain(dot, pipe, chain, chain.Field, args, final)
}

func (s *state) evalVariableNode(dot reflect.Value, v *parse.VariableNode, args []parse.Node, final reflect.Value) reflect.Value {
	s.at(v)
	value := s.varValue(v.Ident[0])
	if len(v.Ident) == 1 {
		s.notAFunction(args, final)
		return value
	}
	return s.evalFieldChain(dot, value, v, v.Ident[1:], args, final)
}

func (s *state) evalFieldChain(dot, receiver reflect.Value, node parse.Node, ident []string, args []parse.Node, final reflect.Value) reflect.Value {
	n := len(ident)
	for i := 0; i < n-1; i++ {
		receiver = s.evalField(ident[i], node, nil, missingVal, receiver)
	}
	return s.evalField(ident[n-1], node, args, final, receiver)
}

// evalField reads a struct field or a map entry. Unlike text/template it
// never looks for a method of that name: see the package comment.
func (s *state) evalField(name string, node parse.Node, args []parse.Node, final, receiver reflect.Value) reflect.Value {
	if !receiver.IsValid() {
		return reflect.Value{}
	}
	typ := receiver.Type()
	receiver, isNil := indirect(receiver)
	if receiver.Kind() == reflect.Interface && isNil {
		s.errorf("nil pointer evaluating %s.%s", typ, name)
	}
	hasArgs := len(args) > 1 || !isMissing(final)
	switch receiver.Kind() {
	case reflect.Struct:
		if f, ok := receiver.Type().FieldByName(name); ok {
			if !f.IsExported() {
				s.errorf("%s is an unexported field of struct type %s", name, typ)
			}
			v, err := receiver.FieldByIndexErr(f.Index)
			if err != nil {
				s.errorf("%v", err)
			}
			if hasArgs {
				s.errorf("%s has arguments but cannot be invoked as function", name)
			}
			return v
		}
	case reflect.Map:
		key := reflect.ValueOf(name)
		if key.Type().AssignableTo(receiver.Type().Key()) {
			if hasArgs {
				s.errorf("%s is not a method but has arguments", name)
			}
			return receiver.MapIndex(key)
		}
	case reflect.Pointer:
		if et := receiver.Type().Elem(); et.Kind() == reflect.Struct {
			if _, ok := et.FieldByName(name); !ok {
				break
			}
		}
		if isNil {
			s.errorf("nil pointer evaluating %s.%s", typ, name)
		}
	}
	s.errorf("can't evaluate field %s in type %s (these templates call no methods: make it a template func)", name, typ)
	return reflect.Value{}
}

func (s *state) evalFunction(dot reflect.Value, node *parse.IdentifierNode, args []parse.Node, final reflect.Value) reflect.Value {
	s.at(node)
	name := node.Ident
	if b, ok := builtins[name]; ok {
		if args != nil {
			args = args[1:]
		}
		return b(s, dot, args, final)
	}
	fn, ok := s.bound[name]
	if !ok {
		fn, ok = s.set.funcs[name]
	}
	if !ok {
		s.errorf("%q is not a defined function", name)
	}
	return s.evalCall(dot, fn, node, name, args, final)
}

// goodFunc reports whether a func can be called from a template: one
// result, or a result and an error.
func goodFunc(name string, t reflect.Type) error {
	switch {
	case t.NumOut() == 1:
		return nil
	case t.NumOut() == 2 && t.Out(1) == errorType:
		return nil
	}
	return fmt.Errorf("func %s: want one result, or a result and an error; has %d results", name, t.NumOut())
}

func (s *state) evalCall(dot, fun reflect.Value, node parse.Node, name string, args []parse.Node, final reflect.Value) reflect.Value {
	if args != nil {
		args = args[1:] // the function's own name
	}
	typ := fun.Type()
	numIn := len(args)
	if !isMissing(final) {
		numIn++
	}
	numFixed := len(args)
	if typ.IsVariadic() {
		numFixed = typ.NumIn() - 1
		if numIn < numFixed {
			s.errorf("wrong number of args for %s: want at least %d got %d", name, typ.NumIn()-1, len(args))
		}
	} else if numIn != typ.NumIn() {
		s.errorf("wrong number of args for %s: want %d got %d", name, typ.NumIn(), numIn)
	}
	argv := make([]reflect.Value, numIn)
	i := 0
	for ; i < numFixed && i < len(args); i++ {
		argv[i] = s.evalArg(dot, typ.In(i), args[i])
	}
	if typ.IsVariadic() {
		et := typ.In(typ.NumIn() - 1).Elem()
		for ; i < len(args); i++ {
			argv[i] = s.evalArg(dot, et, args[i])
		}
	}
	if !isMissing(final) {
		t := typ.In(typ.NumIn() - 1)
		if typ.IsVariadic() {
			if numIn-1 < numFixed {
				t = typ.In(numIn - 1)
			} else {
				t = t.Elem()
			}
		}
		argv[i] = s.validateType(final, t)
	}
	v, err := safeCall(fun, argv)
	if err != nil {
		s.at(node)
		s.errorf("error calling %s: %w", name, err)
	}
	return v
}

// safeCall calls fun, turning a panic into an error, as text/template
// does: a broken func fails the page, not the daemon.
func safeCall(fun reflect.Value, args []reflect.Value) (val reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	ret := fun.Call(args)
	if len(ret) == 2 && !ret[1].IsNil() {
		return ret[0], ret[1].Interface().(error)
	}
	return ret[0], nil
}

func canBeNil(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return true
	}
	return false
}

// validateType makes value fit a parameter of type typ (nil: any).
func (s *state) validateType(value reflect.Value, typ reflect.Type) reflect.Value {
	if !value.IsValid() {
		if typ == nil {
			return reflect.ValueOf(nil)
		}
		if canBeNil(typ) {
			return reflect.Zero(typ)
		}
		s.errorf("invalid value; expected %s", typ)
	}
	if typ != nil && !value.Type().AssignableTo(typ) {
		if value.Kind() == reflect.Interface && !value.IsNil() {
			value = value.Elem()
			if value.Type().AssignableTo(typ) {
				return value
			}
		}
		switch {
		case value.Kind() == reflect.Pointer && value.Type().Elem().AssignableTo(typ):
			value = value.Elem()
			if !value.IsValid() {
				s.errorf("dereference of nil pointer of type %s", typ)
			}
		case reflect.PointerTo(value.Type()).AssignableTo(typ) && value.CanAddr():
			value = value.Addr()
		default:
			s.errorf("wrong type for value; expected %s; got %s", typ, value.Type())
		}
	}
	return value
}

func (s *state) evalArg(dot reflect.Value, typ reflect.Type, n parse.Node) reflect.Value {
	s.at(n)
	switch arg := n.(type) {
	case *parse.DotNode:
		return s.validateType(dot, typ)
	case *parse.NilNode:
		if typ != nil && canBeNil(typ) {
			return reflect.Zero(typ)
		}
		s.errorf("cannot assign nil to %s", typ)
	case *parse.FieldNode:
		return s.validateType(s.evalFieldChain(dot, dot, arg, arg.Ident, []parse.Node{n}, missingVal), typ)
	case *parse.VariableNode:
		return s.validateType(s.evalVariableNode(dot, arg, nil, missingVal), typ)
	case *parse.PipeNode:
		return s.validateType(s.evalPipeline(dot, arg), typ)
	case *parse.IdentifierNode:
		return s.validateType(s.evalFunction(dot, arg, nil, missingVal), typ)
	case *parse.ChainNode:
		return s.validateType(s.evalChainNode(dot, arg, nil, missingVal), typ)
	}
	if typ == nil {
		return s.evalEmptyInterface(dot, n)
	}
	value := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.Bool:
		if b, ok := n.(*parse.BoolNode); ok {
			value.SetBool(b.True)
			return value
		}
	case reflect.String:
		if str, ok := n.(*parse.StringNode); ok {
			value.SetString(str.Text)
			return value
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if num, ok := n.(*parse.NumberNode); ok && num.IsInt {
			value.SetInt(num.Int64)
			return value
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if num, ok := n.(*parse.NumberNode); ok && num.IsUint {
			value.SetUint(num.Uint64)
			return value
		}
	case reflect.Float32, reflect.Float64:
		if num, ok := n.(*parse.NumberNode); ok && num.IsFloat {
			value.SetFloat(num.Float64)
			return value
		}
	case reflect.Interface:
		if typ.NumMethod() == 0 {
			return s.evalEmptyInterface(dot, n)
		}
	}
	s.errorf("can't handle %s for arg of type %s", n, typ)
	return reflect.Value{}
}

func (s *state) evalEmptyInterface(dot reflect.Value, n parse.Node) reflect.Value {
	s.at(n)
	switch n := n.(type) {
	case *parse.BoolNode:
		return reflect.ValueOf(n.True)
	case *parse.DotNode:
		return dot
	case *parse.FieldNode:
		return s.evalFieldChain(dot, dot, n, n.Ident, nil, missingVal)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, nil, missingVal)
	case *parse.NumberNode:
		return s.idealConstant(n)
	case *parse.StringNode:
		return reflect.ValueOf(n.Text)
	case *parse.VariableNode:
		return s.evalVariableNode(dot, n, nil, missingVal)
	case *parse.PipeNode:
		return s.evalPipeline(dot, n)
	}
	s.errorf("can't handle assignment of %s to empty interface argument", n)
	return reflect.Value{}
}

// indirect follows pointers and interfaces to the value at the end; isNil
// reports a nil on the way (the returned value is that pointer or
// interface).
func indirect(v reflect.Value) (rv reflect.Value, isNil bool) {
	for ; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; v = v.Elem() {
		if v.IsNil() {
			return v, true
		}
	}
	return v, false
}

// indirectInterface returns the value inside an interface, or the zero
// Value for a nil one.
func indirectInterface(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Interface {
		return v
	}
	if v.IsNil() {
		return reflect.Value{}
	}
	return v.Elem()
}

func (s *state) printValue(n parse.Node, v reflect.Value) {
	s.at(n)
	iface, ok := printableValue(v)
	if !ok {
		s.errorf("can't print %s of type %s", n, v.Type())
	}
	if _, err := fmt.Fprint(s.w, iface); err != nil {
		panic(execError{fmt.Errorf("writing page: %w", err)})
	}
}

// printableValue returns what fmt should print for v, as text/template
// does: pointers followed unless they are Stringers or errors.
func printableValue(v reflect.Value) (any, bool) {
	if v.Kind() == reflect.Pointer {
		v, _ = indirect(v)
	}
	if !v.IsValid() {
		return "<no value>", true
	}
	if !v.Type().Implements(errorType) && !v.Type().Implements(stringer) {
		if v.CanAddr() && (reflect.PointerTo(v.Type()).Implements(errorType) || reflect.PointerTo(v.Type()).Implements(stringer)) {
			v = v.Addr()
		} else {
			switch v.Kind() {
			case reflect.Chan, reflect.Func:
				return nil, false
			}
		}
	}
	return v.Interface(), true
}

// isTrue is text/template's truth: the zero value of a type is false, a
// struct is always true.
func isTrue(val reflect.Value) (truth, ok bool) {
	if !val.IsValid() {
		return false, true
	}
	switch val.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		truth = val.Len() > 0
	case reflect.Bool:
		truth = val.Bool()
	case reflect.Complex64, reflect.Complex128:
		truth = val.Complex() != 0
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
		truth = !val.IsNil()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		truth = val.Int() != 0
	case reflect.Float32, reflect.Float64:
		truth = val.Float() != 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		truth = val.Uint() != 0
	case reflect.Struct:
		truth = true
	default:
		return false, false
	}
	return truth, true
}
