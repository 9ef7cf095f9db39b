package radius

import (
	"context"
	"errors"
	"sync"
	"time"

	rad "layeh.com/radius"
)

// Problem is what is wrong with a RADIUS server (or a DAS client) as the
// gateway sees it; "" means nothing is.
type Problem string

const (
	// ProblemNone: the server answers, and its answers can be verified.
	ProblemNone Problem = ""
	// ProblemNoMessageAuthenticator: the server answers Access-Requests
	// (or Status-Server on its authentication port) without
	// Message-Authenticator, so nothing it says about a visitor can be
	// trusted (BlastRADIUS). For a DAS client: it sends Disconnect or
	// CoA requests without one.
	ProblemNoMessageAuthenticator Problem = "no-message-authenticator"
	// ProblemWrongSecret: the server answers, but its answers (or the
	// DAS client's requests) do not verify with the shared secret.
	ProblemWrongSecret Problem = "wrong-secret"
	// ProblemUnreachable: no answer at all.
	ProblemUnreachable Problem = "unreachable"
)

// Problems lists every Problem but ProblemNone, for metrics that create
// their series at zero.
var Problems = []Problem{ProblemNoMessageAuthenticator, ProblemWrongSecret, ProblemUnreachable}

// Fix says, for the operator, what to change on the server. The texts
// name FreeRADIUS, the usual server in parks; what they ask for holds for
// any server.
func (p Problem) Fix() string {
	switch p {
	case ProblemNoMessageAuthenticator:
		return "the server must sign every Access-Accept and Access-Reject with Message-Authenticator (RFC 3579; BlastRADIUS, CVE-2024-3596). " +
			"FreeRADIUS before 3.2.5 (Debian 12 ships 3.2.1) does not, and `require_message_authenticator = yes` in clients.conf does not change that " +
			"(it only makes the server demand one from us, which parkportal always sends): upgrade to FreeRADIUS 3.2.5 or later, or, on 3.2.1, add " +
			"`update reply { &Message-Authenticator := 0x00 }` to the virtual server's post-auth section and to its Post-Auth-Type REJECT subsection, " +
			"and `Autz-Type Status-Server { update reply { &Message-Authenticator := 0x00 } ok }` to its authorize section (so Status-Server answers are signed too). " +
			"Until then parkportal uses none of its answers and refuses every login that needs one, whatever fail_policy says"
	case ProblemWrongSecret:
		return "the server's answers do not verify: radius.secret (or secret_file) in parkportal's config must equal the `secret` of this gateway's client entry in the server's clients.conf"
	case ProblemUnreachable:
		return "check the address and port, that the server listens there, that its clients.conf has an entry for the address this gateway sends from, " +
			"with the same secret as radius.secret (FreeRADIUS drops requests whose Message-Authenticator does not verify, so a wrong secret looks like no answer), " +
			"and, for the start-up and periodic checks, that it answers Status-Server (FreeRADIUS: `status_server = yes` in the security section, the default)"
	}
	return ""
}

// Health is what the gateway knows of one server.
type Health struct {
	Server string
	// Known is false until the server was first probed or used.
	Known   bool
	Problem Problem
	// Detail says what was seen, for logs ("Access-Accept to
	// Status-Server without Message-Authenticator").
	Detail string
	// Since is when this state was first seen.
	Since time.Time
}

// serverHealth is a server's Health and what the latest real answer to
// an Access-Request showed: signsAccess is +1 when it carried a
// Message-Authenticator, -1 when it did not, 0 before any.
type serverHealth struct {
	h           Health
	signsAccess int8
}

// observation is one fact about a server.
type observation struct {
	problem Problem
	detail  string
	// access: the fact comes from a real answer to an Access-Request,
	// which settles whether the server signs them.
	access bool
	// probe: the fact comes from a Status-Server answer.
	probe bool
}

// answered is the observation of a valid answer with code.
func answered(code rad.Code, signed, probe bool) observation {
	o := observation{detail: code.String(), probe: probe}
	if code == rad.CodeAccessAccept || code == rad.CodeAccessReject || code == rad.CodeAccessChallenge {
		o.access = !probe
		if !signed {
			o.problem = ProblemNoMessageAuthenticator
			o.detail = code.String() + " to Status-Server without Message-Authenticator"
		}
	}
	return o
}

// failed is the observation of an exchange that got no usable answer.
func failed(err error) observation {
	if errors.Is(err, errWrongSecret) {
		return observation{problem: ProblemWrongSecret, detail: err.Error()}
	}
	return observation{problem: ProblemUnreachable, detail: err.Error()}
}

// observe records o for server and tells OnHealth when the state changed.
// A Status-Server answer without Message-Authenticator does not override
// what real answers showed: a server may sign its Access-Accepts and
// Rejects and not its Status-Server answers, and only the former matter.
func (c *Client) observe(server string, o observation) {
	c.hmu.Lock()
	sh := c.health[server]
	if sh == nil {
		sh = &serverHealth{h: Health{Server: server}}
		c.health[server] = sh
	}
	if o.access {
		if o.problem == ProblemNoMessageAuthenticator {
			sh.signsAccess = -1
		} else if o.problem == ProblemNone {
			sh.signsAccess = 1
		}
	}
	if o.probe && o.problem == ProblemNoMessageAuthenticator && sh.signsAccess > 0 {
		o.problem, o.detail = ProblemNone, "answers Status-Server unsigned; its Access-Accept and -Reject are signed"
	}
	changed := !sh.h.Known || sh.h.Problem != o.problem
	sh.h.Known, sh.h.Detail = true, o.detail
	if changed {
		sh.h.Problem, sh.h.Since = o.problem, time.Now()
	}
	h := sh.h
	c.hmu.Unlock()
	if changed && c.cfg.OnHealth != nil {
		c.cfg.OnHealth(h)
	}
}

// Health returns what is known of each server, in preference order.
func (c *Client) Health() []Health {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	out := make([]Health, 0, len(c.cfg.Servers))
	for _, s := range c.cfg.Servers {
		if sh := c.health[s.Addr]; sh != nil {
			out = append(out, sh.h)
		} else {
			out = append(out, Health{Server: s.Addr})
		}
	}
	return out
}

// Probe sends every server a Status-Server (RFC 5997, with
// Message-Authenticator) at once and returns their Health once all have
// answered or given up (ClientConfig.ProbeTimeout at most). It does not touch
// failover: a probe says how a server is, the next request decides
// where it goes.
func (c *Client) Probe(ctx context.Context) []Health {
	var wg sync.WaitGroup
	for _, srv := range c.cfg.Servers {
		wg.Go(func() {
			build := func(secret []byte) (*rad.Packet, error) {
				return rad.New(rad.CodeStatusServer, secret), nil
			}
			resp, signed, err := c.exchangeOne(ctx, srv, build, c.probeTiming())
			switch {
			case err == nil:
				c.observe(srv.Addr, answered(resp.Code, signed, true))
			case ctx.Err() != nil:
				// The caller gave up (the daemon is stopping): no news.
			default:
				c.observe(srv.Addr, failed(err))
			}
		})
	}
	wg.Wait()
	return c.Health()
}
