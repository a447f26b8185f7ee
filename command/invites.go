package command

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
)

// inviteUsage is the usage of /invite with its limits.
const inviteUsage = "/invite [ROOM] [--once] [--uses N] [--expires DUR], /invite --revoke ID [ROOM]"

// inviteArgs is /invite's parsed arguments.
type inviteArgs struct {
	room    string
	limited bool
	lim     node.InviteLimits
	revoke  string
}

// parseInviteArgs reads /invite's words: at most one room, and the flags.
func parseInviteArgs(args string) (inviteArgs, error) {
	var a inviteArgs
	words := strings.Fields(args)
	for i := 0; i < len(words); i++ {
		w := words[i]
		val := func() (string, error) {
			if i+1 >= len(words) {
				return "", usage("%s", inviteUsage)
			}
			i++
			return words[i], nil
		}
		switch w {
		case "--once":
			a.limited, a.lim.Uses = true, 1
		case "--uses":
			v, err := val()
			if err != nil {
				return a, err
			}
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return a, usage("%s (--uses takes a count from 1)", inviteUsage)
			}
			a.limited, a.lim.Uses = true, uint32(n) // #nosec G115 -- ParseUint with bitSize 32
		case "--expires":
			v, err := val()
			if err != nil {
				return a, err
			}
			d, err := parseInviteDuration(v)
			if err != nil {
				return a, usage("%s (--expires takes a duration such as 90m, 24h or 7d)", inviteUsage)
			}
			a.limited, a.lim.Expires = true, d
		case "--revoke":
			v, err := val()
			if err != nil {
				return a, err
			}
			a.revoke = v
		default:
			if strings.HasPrefix(w, "--") || a.room != "" {
				return a, usage("%s", inviteUsage)
			}
			a.room = w
		}
	}
	if a.revoke != "" && a.limited {
		return a, usage("%s", inviteUsage)
	}
	return a, nil
}

// parseInviteDuration is time.ParseDuration plus whole days ("7d").
func parseInviteDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil || n == 0 {
			return 0, usage("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usage("bad duration %q", s)
	}
	return d, nil
}

// cmdInviteAny is /invite: the open invite code, a limited invite
// (--once, --uses, --expires) or a revocation (--revoke).
func (in *Interp) cmdInviteAny(ctx context.Context, args string) (Reply, error) {
	a, err := parseInviteArgs(args)
	if err != nil {
		return Reply{}, err
	}
	if a.revoke == "" && !a.limited {
		return in.cmdInvite(ctx, a.room)
	}
	name, err := in.room(a.room)
	if err != nil {
		return Reply{}, err
	}
	if a.revoke != "" {
		if err := in.n.RevokeInvite(ctx, name, a.revoke); err != nil {
			return Reply{}, err
		}
		return Reply{Text: present.InviteRevoked(name, a.revoke)}, nil
	}
	row, err := in.n.CreateInvite(ctx, name, a.lim)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.LimitedInvite(row), Data: row}, nil
}

func (in *Interp) cmdInvites(_ context.Context, args string) (Reply, error) {
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	rows, err := in.n.Invites(name)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Invites(name, rows), Data: rows}, nil
}
