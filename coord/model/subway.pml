/* subway.pml -- Promela model of subway's Redis coordination (sessions, leases, fencing, reaping) for one feed. */

/*
 * Read coord/model/README.md first: what is modelled and what is not, which
 * invariant is checked where, the bounds, and what each -D switch does.
 *
 * Processes: N nodes; one Redis that runs one script at a time, atomically,
 * from the head of any connection's queue; one reaper (the reaping loop of
 * whichever node runs it); one clock; one monitor. Time is Redis's clock in
 * ticks, and every timer is "ticks left", so states repeat and the search
 * is exhaustive with no time bound.
 *
 * The Redis side is the inlines acquire .. stop: hold each one against
 * coord/scripts/<name>.lua (Promela reserves "assert": that one is assert_).
 */

/* ================================================================ bounds */
#ifndef N
#define N 2            /* nodes (the monitor and Redis are written out for 2) */
#endif
#ifndef L
#define L 3            /* owner lease (PX), ticks */
#endif
#ifndef FENCE
#define FENCE 2        /* an owner acts until (send time of its last good renew) + FENCE: "0.8 L" */
#endif
#ifndef MAXINC
#define MAXINC 2       /* sessions per node, the first included */
#endif
#ifndef QCAP
#define QCAP 3         /* requests (and replies) in flight per connection */
#endif
#ifndef GQ
#define GQ 2           /* lease-granting requests (acquire/claim/renew/assert) in flight per node */
#endif
#ifndef SUBOPS
#define SUBOPS 2       /* subscribe/unsubscribe events per node */
#endif
#ifndef RELAYS
#define RELAYS 2       /* relays, all nodes together */
#endif
#ifndef FAULTS
#define FAULTS 1       /* faults (of the kinds switched on below), all together */
#endif
#define NC (N * MAXINC) /* connections: node i's k-th is i*MAXINC+k */

/* Faults: each kind is on unless -DNO_<kind>. Message delay, a partition
 * (the connection stays open, everything in it waits) and reply delay need
 * no switch: Redis and the nodes may leave any queue alone while time runs. */
#ifdef NO_CRASH
#define F_CRASH 0
#else
#define F_CRASH 1      /* kill -9; systemd starts a new process (new session, new connection) */
#endif
#ifdef NO_STOP
#define F_STOP 0
#else
#define F_STOP 1       /* SIGTERM: resign, release, delete the liveness key, exit */
#endif
#ifdef NO_PAUSE
#define F_PAUSE 0
#else
#define F_PAUSE 1      /* the process takes no step, for as long as it likes, while time runs */
#endif
#ifdef NO_LOSS
#define F_LOSS 0
#else
#define F_LOSS 1       /* the connection breaks and comes back: new session on a new connection */
#endif
#ifdef REDIS_RESTART
#define F_RESTART 1    /* Redis restarts empty: every key and every connection is gone */
#else
#define F_RESTART 0
#endif
#ifdef NO_LAPSE
#define LAPSES 0       /* (to point a run elsewhere) node 1's liveness key never lapses */
#else
#define LAPSES 1
#endif
#ifdef NO_DISOWN
#define F_DISOWN 0
#else
#define F_DISOWN 1     /* an owner with no local subscriber gives the feed up */
#endif

/* Node 0 is the steady peer unless -DBOTH_FAULTY: it suffers no fault and
 * its liveness key never lapses (its requests and replies still wait any
 * time). Node 1 suffers every fault, and its liveness key may lapse at any
 * time (README, "Time and liveness"). By symmetry nothing is lost while
 * FAULTS is 1; it halves what the search holds. */
#ifdef BOTH_FAULTY
#define FAULTY(i)   true
#else
#define FAULTY(i)   (i == 1)
#endif

/* ================================================= fixes and variants
 * AS_WRITTEN is the design as handed over. Each FIX_* closes a hole spin
 * found in it (README, "Findings"); the default model has all of them;
 * -DNO_FIX_x drops one. BUG_* break the protocol on purpose: check.sh runs
 * them to show the checker finds what it must. */
#ifdef AS_WRITTEN
#define NO_FIX_HEED
#define NO_FIX_LIVE
#define NO_FIX_ORDER
#define NO_FIX_GRACE
#define NO_FIX_REAPLEASE
#endif
#ifndef NO_FIX_HEED
#define FIX_HEED   /* ownership news is heeded only from replies to requests of the current session sent
                      since it last gave the feed up; a new session acts only on a new grant */
#endif
#ifndef NO_FIX_LIVE
#define FIX_LIVE   /* acquire/release/claim/assert refuse a session whose liveness key holds another incarnation */
#endif
#ifndef NO_FIX_ORDER
#define FIX_ORDER  /* a session start registers (fencing the old incarnation) before it reads the index and
                      reaps; reap goes by node id (removes what is not the live incarnation's) */
#endif
#ifndef NO_FIX_REAPLEASE
#define FIX_REAPLEASE /* a reaper's reap leaves the dead session's lease to run out; only the node's own
                         session start (which knows the old process is gone) hands it on or deletes it */
#endif
#ifndef NO_FIX_GRACE
#define FIX_GRACE  /* after a Redis restart nothing is granted for L ticks */
#endif

/* Invariants asserted (check.sh switches some off to point a run at one). */
#ifdef NO_CHECK_I1
#define CHECK_I1(e) false
#else
#define CHECK_I1(e) assert(e)
#endif
#ifdef NO_CHECK_I2
#define CHECK_I2(e) skip
#else
#define CHECK_I2(e) assert(e)
#endif
#ifdef NO_CHECK_I3
#define CHECK_I3(e) skip
#else
#define CHECK_I3(e) assert(e)
#endif

/* ================================================================ names */
mtype = { ACQUIRE, RELEASE, CLAIM, RENEW, RELAY, DISOWN, RESIGN, ASSERT,
          REAP, REGISTER, FORGET, READ, STOP };

#define TOK(i, n)   ((i) * 4 + (n))   /* session token "ID:INC" (INC 1..3); 0 = no owner */
#define TID(t)      ((t) / 4)
#define NONE        255

#define OPEN   0      /* a connection: in use */
#define CLOSED 1      /* the client gave it up: what it sent may still run; replies are lost */
#define DEAD   2      /* Redis restarted: nothing sent on it runs */

#define DOWN      0   /* node phases */
#define STARTING  1   /* new session: registering, reading, reaping, re-asserting */
#define SETTLED   2

/* a session start's steps, sent one per node step in this order */
#define S_REGISTER1 1    /* FIX_ORDER: register first (returns the incarnation it replaced) */
#define S_READ      2    /* HGET subway:nodes ID + SMEMBERS subway:node:ID:feeds; waits for the reply */
#define S_REAP      4
#define S_FORGET    8
#define S_REGISTER 16    /* as written: register after reaping */
#define S_ASSERT   32

/* ================================================================ Redis */
byte rn[N];         /* subway:feed:{F}:nodes     node -> local count (0 = no entry) */
byte rs[N];         /* subway:feed:{F}:sessions  node -> incarnation that wrote it (0 = none) */
byte count;         /* subway:feed:{F}:count */
byte owner;         /* subway:feed:{F}:owner     token, 0 = none */
byte lease;         /*                           its PX, ticks left */
byte offsets;       /* subway:feed:{F}:offsets   next position (one partition) */
byte reg[N];        /* subway:nodes              node -> incarnation (0 = none) */
byte live[N];       /* subway:node:ID            its incarnation field (0 = no key) */
bool idx[N];        /* subway:node:ID:feeds      has F */
byte grace;         /* FIX_GRACE: ticks left in which nothing is granted */

chan rq[NC] = [QCAP] of { mtype, byte, byte, byte };        /* type, inc, a, b */
chan rp[NC] = [QCAP] of { mtype, byte, byte, byte, byte };  /* type, inc, owner, g, off */
byte cst[NC];       /* OPEN / CLOSED / DEAD */

/* ================================================================ nodes */
bool up[N];
bool paused[N];
byte phase[N];
byte inc[N];        /* its session's incarnation, 1..MAXINC */
byte cur[N];        /* its connection, 0..MAXINC-1 */
byte nlocal[N];     /* local subscriptions, 0..1 */
bool owning[N];     /* believes it owns */
byte dl[N];         /* ticks it may still act as owner (self-fencing) */
byte pos[N];        /* the position it relays next */
byte gn[N];         /* lease-granting requests in flight */
byte ga[N * GQ];    /* their ages in ticks, oldest first, up to FENCE */
bool clout[N];      /* claim in flight */
bool rnout[N];      /* renew in flight */
bool disout[N];     /* disown in flight */
bool tmr[N];        /* its renew/claim timer fired this tick already (one of each kind per tick) */
byte todo[N];       /* session start: S_* steps still to send */
bool newproc[N];    /* the session start is a new process's (no successor) */
byte oldinc[N];     /* the incarnation the session start reaps (0 = none) */
bool ridx[N];       /* ... and whether its index holds F */
byte subops[N];
byte relays = RELAYS;
byte faults = FAULTS;

byte rv = NONE;     /* reaper: the node whose session it is reaping */
byte rinc;          /*   that session's incarnation */
bool rf;            /*   the index it read holds F */

#define C(i)        ((i) * MAXINC + cur[i])
#define ROOM(i, k)  (cst[C(i)] == DEAD || len(rq[C(i)]) + (k) <= QCAP)
#define SEND(t, n, a, b)  if :: cst[C(i)] != DEAD -> rq[C(i)]!t, n, a, b :: else -> skip fi
#define PUSHAGE     ga[i * GQ + gn[i]] = 0; gn[i]++
#define RUNS(i)     (up[i] && !paused[i])

#ifdef BUG_NOFENCE
#define FENCED(i)   false               /* the owner never fences itself */
#else
#define FENCED(i)   (dl[i] == 0)
#endif
/* I1's "acting as owner": may relay, write offsets, fetch for the cluster.
 * A paused node counts: it acts the moment it resumes. */
#define ACTING(i)   (up[i] && owning[i] && !FENCED(i) && phase[i] != DOWN)

/* trail output: what a node does (spin -t prints these) */
mtype = { Subscribes, Unsubscribes, Renews, Claims, Disowns, Relays, Lapsed_NewSession, Reasserts,
          PAUSED, Resumes, CRASHES, STOPS, LOSES_CONNECTION_NewSession, SeesRedisRestart_NewSession, ProcessStarts };
#define LOG(ev)     printf("N%d %e (inc %d owning %d dl %d)\n", i, ev, inc[i], owning[i], dl[i])

/* ======================================================= Redis scripts
 * Each runs inside one atomic step of the Redis process, as a Lua script
 * does. i = the calling node (from its connection), n = its incarnation.
 * Results: r_own (owner after), r_g (1: this call set the lease / beat
 * refreshed), r_off (offsets handed over with a grant). */

#ifdef FIX_LIVE
#define SESSION_LIVE(i, n) (live[i] == (n))
#else
#define SESSION_LIVE(i, n) true
#endif
#ifdef FIX_GRACE
#define MAY_GRANT (grace == 0)
#else
#define MAY_GRANT true
#endif

inline store_count() {
    count = rn[0] + rn[1]
}

/* FIX_HEED: acquire/claim/assert hand the offsets to a caller that owns
 * after the call, granted or handed over (as written: only with a grant) */
#ifdef FIX_HEED
#define OWNERS_OFFSETS(i, n) if :: owner == TOK(i, n) -> r_off = offsets :: else -> skip fi
#else
#define OWNERS_OFFSETS(i, n) skip
#endif

/* the caller takes the lease and the offsets to resume from */
inline grant(i, n) {
    owner = TOK(i, n); lease = L; r_g = 1; r_off = offsets
}

/* with the SADD of F to the node's index that goes just before it */
inline acquire(i, n) {
    idx[i] = 1;
    if
    :: SESSION_LIVE(i, n) ->
        if :: rs[i] != n -> rn[i] = 0 :: else -> skip fi;
        rn[i]++; rs[i] = n; store_count();
        if :: owner == 0 && MAY_GRANT -> grant(i, n) :: else -> skip fi
    :: else -> skip
    fi;
    r_own = owner;
    OWNERS_OFFSETS(i, n)
}

/* a = 1: the node's count went to 0, and the SREM of F from its index follows */
inline release(i, n, a) {
    if
    :: SESSION_LIVE(i, n) && rs[i] == n && rn[i] > 0 ->
        rn[i]--;
        if :: rn[i] == 0 -> rs[i] = 0 :: else -> skip fi;
        store_count();
#ifdef FIX_LIVE
        if :: a && rn[i] == 0 -> idx[i] = 0 :: else -> skip fi   /* SREM only what it removed */
#endif
    :: else -> skip
    fi;
#ifndef FIX_LIVE
    if :: a -> idx[i] = 0 :: else -> skip fi
#endif
}

inline claim(i, n) {
    if :: SESSION_LIVE(i, n) && owner == 0 && MAY_GRANT -> grant(i, n) :: else -> skip fi;
    r_own = owner;
    OWNERS_OFFSETS(i, n)
}

inline renew(i, n) {
    if :: owner == TOK(i, n) -> lease = L; r_g = 1 :: else -> skip fi;
    r_own = owner
}

/* I2 is asserted here: what is applied comes from the owner's token, and
 * skips no position (a record may go twice: clients dedupe). */
inline relay(i, n, p) {
    if
#ifdef BUG_NOTOKEN
    :: true ->                                /* the script forgot the token check */
#else
    :: owner == TOK(i, n) ->
#endif
        CHECK_I2(owner == TOK(i, n));         /* I2: only the owner's token writes */
        CHECK_I2(p <= offsets + 1);           /* I2: no record skipped */
        offsets = p
    :: else -> skip                           /* refused */
    fi
}

inline disown(i, n) {
    if :: owner == TOK(i, n) && count == 0 -> owner = 0; lease = 0 :: else -> skip fi;
    r_own = owner
}

inline resign(i, n) {
    if :: owner == TOK(i, n) -> owner = 0; lease = 0 :: else -> skip fi
}

/* assert.lua. a = local count, b = own. With the SADD before it when a > 0. */
inline assert_(i, n, a, b) {
    if
    :: SESSION_LIVE(i, n) ->
        if :: a > 0 -> idx[i] = 1 :: else -> skip fi;
        rn[i] = a; rs[i] = n; store_count();
        if
        :: b && MAY_GRANT && (owner == 0 || TID(owner) == i) -> grant(i, n)
        :: else -> skip
        fi;
    :: else -> skip
    fi;
    r_own = owner;
    OWNERS_OFFSETS(i, n)
}

/* dead = the lapsed incarnation; succ = its successor in the same process,
 * 0 = none; byreaper = another node's reaper runs it (else the node's own
 * session start) */
#ifdef FIX_REAPLEASE
#define REAP_FREES(byreaper) (!(byreaper))
#else
#define REAP_FREES(byreaper) true
#endif
#ifdef FIX_ORDER
/* by node id: whatever incarnation wrote it, unless that one is live */
#define REAPS(i, dead)  (rs[i] != 0 && rs[i] != live[i])
#define DEADOWNER(i, dead) (owner != 0 && TID(owner) == i && owner != TOK(i, live[i]))
#else
#define REAPS(i, dead)  (rs[i] == dead)
#define DEADOWNER(i, dead) (owner == TOK(i, dead))
#endif
inline reap(i, dead, succ, byreaper) {
    if :: REAPS(i, dead) -> rn[i] = 0; rs[i] = 0; store_count() :: else -> skip fi;
    if
    :: DEADOWNER(i, dead) && succ != 0 -> owner = TOK(i, succ)         /* same lease left */
    :: DEADOWNER(i, dead) && succ == 0 && REAP_FREES(byreaper) -> owner = 0; lease = 0
    :: else -> skip
    fi
}

/* Its TTL refresh is not modelled: the key lapses whenever the environment
 * says so (see the reaper process). What is left: is the key still mine? */
inline beat(i, n) {
    if :: live[i] == n -> r_g = 1 :: else -> r_g = 0 fi
}

inline register(i, n) {
    r_own = reg[i];                           /* the incarnation it replaces */
    reg[i] = n; live[i] = n
}

/* forget.lua: a reaped session's registry entry and index */
inline forget(i, dead) {
    if :: reg[i] == dead -> reg[i] = 0; idx[i] = 0 :: else -> skip fi
}

/* a graceful stop's DEL subway:node:ID */
inline stop(i) {
    live[i] = 0
}

/* ================================================================ Redis */

/* the request at the head of connection c's queue */
inline serve(c) {
    rq[c]?t, n, a, b;
    id = c / MAXINC; r_own = 0; r_g = 0; r_off = 0; rep = 1;
    if
    :: t == ACQUIRE  -> acquire(id, n)
    :: t == RELEASE  -> release(id, n, a); rep = 0
    :: t == CLAIM    -> claim(id, n)
    :: t == RENEW    -> renew(id, n)
    :: t == RELAY    -> relay(id, n, a); rep = 0
    :: t == DISOWN   -> disown(id, n)
    :: t == RESIGN   -> resign(id, n); rep = 0
    :: t == ASSERT   -> assert_(id, n, a, b)
    :: t == REAP     -> reap(id, a, b, 0); rep = 0
    :: t == REGISTER -> register(id, n)
    :: t == FORGET   -> forget(id, a); rep = 0
    :: t == READ     -> r_own = reg[id]; r_g = idx[id]
    :: t == STOP     -> stop(id); rep = 0
    fi;
    printf("R   %e %d:%d (%d %d) -> owner %d g %d | nodes %d,%d sess %d,%d count %d owner %d/%d off %d live %d,%d reg %d,%d idx %d,%d\n",
           t, id, n, a, b, r_own, r_g, rn[0], rn[1], rs[0], rs[1], count, owner, lease, offsets,
           live[0], live[1], reg[0], reg[1], idx[0], idx[1]);
    if :: rep && cst[c] == OPEN -> rp[c]!t, n, r_own, r_g, r_off :: else -> skip fi;
    t = 0; n = 0; a = 0; b = 0; id = 0; r_own = 0; r_g = 0; r_off = 0; rep = 0
}

inline flushq(c) {
    do
    :: rq[c]?_, _, _, _
    :: empty(rq[c]) -> break
    od;
    do
    :: rp[c]?_, _, _, _, _
    :: empty(rp[c]) -> break
    od
}

/* connection c may run its head request (a reply needs room) */
#define READY(c)    (nempty(rq[c]) && nfull(rp[c]) && cst[c] != DEAD)
/* a connection the client gave up still has requests: Redis may notice the close */
#define NOTICE(c)   (nempty(rq[c]) && cst[c] == CLOSED)

active proctype redis() {
    mtype t;
    byte n, a, b, id, r_own, r_g, r_off, k;
    bool rep;
end_redis:
    do
    :: atomic {
        if
        :: READY(0) -> k = 0
        :: READY(1) -> k = 1
        :: READY(2) -> k = 2
        :: READY(3) -> k = 3
#if N * MAXINC > 4
        :: READY(4) -> k = 4
        :: READY(5) -> k = 5
#endif
        fi;
        serve(k); k = 0 }
    :: atomic {                                  /* what is left on it is lost */
        if
        :: NOTICE(0) -> k = 0
        :: NOTICE(1) -> k = 1
        :: NOTICE(2) -> k = 2
        :: NOTICE(3) -> k = 3
#if N * MAXINC > 4
        :: NOTICE(4) -> k = 4
        :: NOTICE(5) -> k = 5
#endif
        fi;
        flushq(k); k = 0 }
    :: atomic { F_RESTART && faults > 0 ->         /* restart without persistence */
        faults--;
        printf("REDIS RESTART\n");
        k = 0;
        do
        :: k < N -> rn[k] = 0; rs[k] = 0; reg[k] = 0; live[k] = 0; idx[k] = 0; k++
        :: k == N -> break
        od;
        count = 0; owner = 0; lease = 0; offsets = 0;
#ifdef FIX_GRACE
        grace = L;
#endif
        k = 0;
        do
        :: k < NC -> flushq(k);                  /* connections opened so far die */
            if :: k % MAXINC <= cur[k / MAXINC] -> cst[k] = DEAD :: else -> skip fi; k++
        :: k == NC -> break
        od;
        k = 0 }
    od
}

/* ================================================================ clock */

/* Nothing holds time up: any message may wait any number of ticks. */

active proctype clock() {
    byte i, k;
end_clock:
    do
    :: atomic { true ->
        if :: lease > 0 -> lease--; if :: lease == 0 -> owner = 0 :: else -> skip fi :: else -> skip fi;
        if :: grace > 0 -> grace-- :: else -> skip fi;
        i = 0;
        do
        :: i < N ->
            if :: dl[i] > 0 -> dl[i]-- :: else -> skip fi;
            tmr[i] = 0;
            k = 0;
            do
            :: k < gn[i] -> if :: ga[i * GQ + k] < FENCE -> ga[i * GQ + k]++ :: else -> skip fi; k++
            :: k >= gn[i] -> break
            od;
            i++
        :: i == N -> break
        od;
        printf("TICK owner %d/%d dl %d,%d\n", owner, lease, dl[0], dl[1]);
        i = 0; k = 0 }
    od
}

/* ================================================================ nodes */

inline clrages(i) {
    gn[i] = 0; ga[i * GQ] = 0; ga[i * GQ + GQ - 1] = 0
}

inline popage(i) {
    age = ga[i * GQ]; ga[i * GQ] = ga[i * GQ + GQ - 1]; ga[i * GQ + GQ - 1] = 0; gn[i]--
}

/* A new session (incarnation inc+1). sameproc: this process goes on (its
 * beat found it lapsed, or its connection came back), and hands its lease
 * to the new incarnation; else a new process, which lets it go. */
inline newsess(i, sameproc) {
    oldinc[i] = (sameproc -> inc[i] : 0);
    newproc[i] = !sameproc;
    inc[i]++;
    phase[i] = STARTING;
    ridx[i] = 0;
#ifdef FIX_HEED
    dl[i] = 0;                               /* acts again on a grant of the new session only */
#endif
#ifdef FIX_ORDER
    todo[i] = S_REGISTER1 | S_READ
#else
    todo[i] = S_READ
#endif
}

/* the client gives its connection up: replies on it are lost, and what it
 * sent may still run until Redis notices */
inline abandon(i) {
    if :: cst[C(i)] == OPEN -> cst[C(i)] = CLOSED :: else -> skip fi;
    do
    :: rp[C(i)]?_, _, _, _, _
    :: empty(rp[C(i)]) -> break
    od;
    clrages(i); clout[i] = 0; rnout[i] = 0; disout[i] = 0
}

inline newconn(i) {
    abandon(i);
    cur[i]++
}

#ifdef FIX_HEED
#define HEEDS(ri)   (ri == inc[i] && !disout[i])
#else
#define HEEDS(ri)   true
#endif

/* what a reply to acquire/claim/renew/assert (sent as incarnation ri) tells the node */
inline learn(t, ri, ro, rg, roff) {
    if
    :: HEEDS(ri) && ro == TOK(i, ri) ->
#ifdef FIX_HEED
        if :: (rg || !owning[i]) && t != RENEW -> pos[i] = roff :: else -> skip fi;  /* resume there */
#else
        if :: rg && t != RENEW -> pos[i] = roff :: else -> skip fi;
#endif
        owning[i] = 1;
        if
        :: rg && age < FENCE && dl[i] < FENCE - age -> dl[i] = FENCE - age  /* lease set at or after the send */
        :: else -> skip
        fi
    :: HEEDS(ri) && ro != TOK(i, ri) && ri == inc[i] -> owning[i] = 0; dl[i] = 0
    :: else -> skip
    fi
}

proctype node(byte i) {
    mtype t;
    byte ri, ro, rg, roff, age, r_g;
end_node:
    do
    /* ---- its clients */
    :: atomic { RUNS(i) && phase[i] == SETTLED && nlocal[i] == 0 && subops[i] > 0 && gn[i] < GQ && ROOM(i, 1) ->
        LOG(Subscribes); nlocal[i] = 1; subops[i]--; SEND(ACQUIRE, inc[i], 0, 0); PUSHAGE }
    :: atomic { RUNS(i) && phase[i] != DOWN && nlocal[i] == 1 && subops[i] > 0 && ROOM(i, 1) ->
        LOG(Unsubscribes); nlocal[i] = 0; subops[i]--; SEND(RELEASE, inc[i], 1, 0) }

    /* ---- timers */
    /* its beat finds the liveness key gone or another's (reply 0) */
    :: atomic { RUNS(i) && phase[i] == SETTLED && live[i] != inc[i] && inc[i] < MAXINC ->
        beat(i, inc[i]); assert(r_g == 0); r_g = 0; LOG(Lapsed_NewSession); newsess(i, 1) }
    :: atomic { RUNS(i) && phase[i] == SETTLED && owning[i] && !rnout[i] && !disout[i] && !tmr[i] && gn[i] < GQ && ROOM(i, 1) ->
        LOG(Renews); rnout[i] = 1; tmr[i] = 1; SEND(RENEW, inc[i], 0, 0); PUSHAGE }
    :: atomic { RUNS(i) && phase[i] == SETTLED && nlocal[i] > 0 && !owning[i] && !clout[i] && !tmr[i] && gn[i] < GQ && ROOM(i, 1) ->
        LOG(Claims); clout[i] = 1; tmr[i] = 1; SEND(CLAIM, inc[i], 0, 0); PUSHAGE }
    /* linger over with no local subscriber: it stops acting, then asks (the script checks the count) */
    :: atomic { F_DISOWN && RUNS(i) && phase[i] == SETTLED && owning[i] && nlocal[i] == 0 && !disout[i] && ROOM(i, 1) ->
        LOG(Disowns); owning[i] = 0; disout[i] = 1; SEND(DISOWN, inc[i], 0, 0) }

    /* ---- owner work */
    :: atomic { ACTING(i) && !paused[i] && relays > 0 && ROOM(i, 1) ->
        LOG(Relays); relays--; pos[i]++; SEND(RELAY, inc[i], pos[i], 0) }

    /* ---- a reply, in order, on its connection */
    :: atomic { RUNS(i) && nempty(rp[C(i)]) ->
        rp[C(i)]?t, ri, ro, rg, roff;
        printf("N%d   <- %e inc %d owner %d g %d off %d\n", i, t, ri, ro, rg, roff);
        if
        :: t == DISOWN ->
            disout[i] = 0;
            if :: ri == inc[i] && ro == TOK(i, ri) -> owning[i] = 1 :: else -> skip fi  /* refused: still owns */
        :: t == REGISTER ->
#ifdef FIX_ORDER
            if :: ri == inc[i] && newproc[i] -> oldinc[i] = ro :: else -> skip fi        /* whom to reap */
#else
            skip
#endif
        :: t == READ ->
            if
            :: ri == inc[i] && phase[i] == STARTING ->
#ifndef FIX_ORDER
                if :: newproc[i] -> oldinc[i] = ro :: else -> skip fi;
#endif
                ridx[i] = rg;
#ifdef FIX_ORDER
                if :: rg -> todo[i] = todo[i] | S_REAP :: else -> skip fi;   /* by id: even if unregistered */
#else
                if :: oldinc[i] != 0 && rg -> todo[i] = todo[i] | S_REAP :: else -> skip fi;
#endif
#ifndef FIX_ORDER
                if :: oldinc[i] != 0 -> todo[i] = todo[i] | S_FORGET :: else -> skip fi;
                todo[i] = todo[i] | S_REGISTER;
#endif
                if :: nlocal[i] > 0 || owning[i] -> todo[i] = todo[i] | S_ASSERT :: else -> skip fi;
                if :: todo[i] == 0 -> phase[i] = SETTLED :: else -> skip fi
            :: else -> skip
            fi
        :: else ->                                       /* ACQUIRE CLAIM RENEW ASSERT */
            popage(i);
            if :: t == CLAIM -> clout[i] = 0 :: t == RENEW -> rnout[i] = 0 :: else -> skip fi;
            learn(t, ri, ro, rg, roff);
            if :: t == ASSERT && ri == inc[i] && phase[i] == STARTING && todo[i] == 0 ->
                    phase[i] = SETTLED
               :: else -> skip fi
        fi;
        t = 0; ri = 0; ro = 0; rg = 0; roff = 0; age = 0 }

    /* ---- a session start, one request per step */
    :: atomic { RUNS(i) && phase[i] == STARTING && (todo[i] & S_REGISTER1) && ROOM(i, 1) ->
        todo[i] = todo[i] & ~S_REGISTER1; SEND(REGISTER, inc[i], 0, 0) }
    :: atomic { RUNS(i) && phase[i] == STARTING && (todo[i] & (S_REGISTER1 | S_READ)) == S_READ && ROOM(i, 1) ->
        todo[i] = 0; SEND(READ, inc[i], 0, 0) }          /* then waits for READ's reply */
    :: atomic { RUNS(i) && phase[i] == STARTING && (todo[i] & S_REAP) && ROOM(i, 1) ->
        todo[i] = todo[i] & ~S_REAP; SEND(REAP, inc[i], oldinc[i], (newproc[i] -> 0 : inc[i])) }
    :: atomic { RUNS(i) && phase[i] == STARTING && (todo[i] & (S_REAP | S_FORGET)) == S_FORGET && ROOM(i, 1) ->
        todo[i] = todo[i] & ~S_FORGET; SEND(FORGET, inc[i], oldinc[i], 0) }
    :: atomic { RUNS(i) && phase[i] == STARTING && (todo[i] & (S_REAP | S_FORGET | S_REGISTER)) == S_REGISTER && ROOM(i, 1) ->
        todo[i] = todo[i] & ~S_REGISTER; SEND(REGISTER, inc[i], 0, 0);
        if :: todo[i] == 0 -> phase[i] = SETTLED :: else -> skip fi }
    :: atomic { RUNS(i) && phase[i] == STARTING && todo[i] == S_ASSERT && gn[i] < GQ && ROOM(i, 1) ->
        LOG(Reasserts); todo[i] = 0; SEND(ASSERT, inc[i], nlocal[i], owning[i]); PUSHAGE }

    /* ---- faults */
    :: atomic { F_PAUSE && FAULTY(i) && RUNS(i) && faults > 0 -> LOG(PAUSED); faults--; paused[i] = 1 }
    :: atomic { paused[i] -> LOG(Resumes); paused[i] = 0 }
    :: atomic { F_CRASH && FAULTY(i) && up[i] && faults > 0 ->
        LOG(CRASHES); faults--;
        abandon(i);
        up[i] = 0; paused[i] = 0; phase[i] = DOWN; todo[i] = 0;
        nlocal[i] = 0; owning[i] = 0; dl[i] = 0; pos[i] = 0 }
    :: atomic { F_STOP && FAULTY(i) && RUNS(i) && phase[i] == SETTLED && faults > 0 && ROOM(i, 3) ->
        LOG(STOPS); faults--;
        if :: owning[i] -> SEND(RESIGN, inc[i], 0, 0) :: else -> skip fi;
        if :: nlocal[i] > 0 -> SEND(RELEASE, inc[i], 1, 0) :: else -> skip fi;
        SEND(STOP, inc[i], 0, 0);
        abandon(i);
        up[i] = 0; phase[i] = DOWN; nlocal[i] = 0; owning[i] = 0; dl[i] = 0; pos[i] = 0 }
    :: atomic { F_LOSS && FAULTY(i) && RUNS(i) && phase[i] != DOWN && faults > 0 && cst[C(i)] == OPEN && inc[i] < MAXINC ->
        LOG(LOSES_CONNECTION_NewSession); faults--; newconn(i); newsess(i, 1) }
    :: atomic { RUNS(i) && cst[C(i)] == DEAD && inc[i] < MAXINC ->
        LOG(SeesRedisRestart_NewSession); newconn(i); newsess(i, 1) }
    :: atomic { !up[i] && inc[i] < MAXINC ->
        LOG(ProcessStarts); up[i] = 1; newconn(i); newsess(i, 0) }
    od
}

/* ============================================================= reaper */

/* A session is dead when it is registered and its liveness key is gone or
 * holds another incarnation. Reads (HGETALL subway:nodes, HGET liveness,
 * SMEMBERS index), reap.lua, forget.lua: separate steps, with anything in
 * between. */
#define DEADSESS(j) (reg[j] != 0 && live[j] != reg[j])

active proctype reaper() {
end_reaper:
    do
    /* the environment: node 1's liveness key expires (it was paused, dead, or
     * its beats were held up for the TTL; delays have no bound, so any time) */
    :: atomic { LAPSES && live[1] != 0 -> live[1] = 0; printf("LIVENESS KEY of 1 EXPIRES\n") }
#ifdef BOTH_FAULTY
    :: atomic { live[0] != 0 -> live[0] = 0; printf("LIVENESS KEY of 0 EXPIRES\n") }
#endif
    :: atomic { rv == NONE && DEADSESS(0) -> rv = 0; rinc = reg[0]; rf = idx[0];
                printf("REAPER: 0:%d is dead (index %d)\n", rinc, rf) }
    :: atomic { rv == NONE && DEADSESS(1) -> rv = 1; rinc = reg[1]; rf = idx[1];
                printf("REAPER: 1:%d is dead (index %d)\n", rinc, rf) }
    :: atomic { rv != NONE && rf -> reap(rv, rinc, 0, 1); rf = 0;
                printf("REAPER: reap %d:%d -> owner %d count %d\n", rv, rinc, owner, count) }
    :: atomic { rv != NONE && !rf -> forget(rv, rinc); printf("REAPER: forget %d:%d\n", rv, rinc);
                rv = NONE; rinc = 0 }
    od
}

/* ============================================================ monitor */

/* A quiet point: nothing in flight, no reaping under way, and every node
 * either up, settled and registered and live as its current session, or
 * down and forgotten. */
#define NODE_QUIET(j) ((RUNS(j) && phase[j] == SETTLED && cst[C(j)] == OPEN && \
                        reg[j] == inc[j] && live[j] == inc[j]) || (!up[j] && reg[j] == 0))
#define Q0(c) (empty(rq[c]) && empty(rp[c]))
#if N * MAXINC > 4
#define ALLQ0 (Q0(0) && Q0(1) && Q0(2) && Q0(3) && Q0(4) && Q0(5))
#else
#define ALLQ0 (Q0(0) && Q0(1) && Q0(2) && Q0(3))
#endif
/* I3 for node j: its count is its local one, written by its current
 * session, and its index has F while it holds F */
#define I3(j) (up[j] -> (rn[j] == nlocal[j] && (rn[j] == 0 || rs[j] == inc[j]) && (nlocal[j] == 0 || idx[j])) \
                      : (rn[j] == 0 && rs[j] == 0))

active proctype monitor() {
end_monitor:
    do
    :: CHECK_I1(!(ACTING(0) && ACTING(1)))                                  /* I1 */
    :: atomic { ALLQ0 && rv == NONE && NODE_QUIET(0) && NODE_QUIET(1) ->
        CHECK_I3(count == rn[0] + rn[1] && I3(0) && I3(1));                 /* I3 */
        CHECK_I3(count == 0 || (up[0] && nlocal[0] > 0) || (up[1] && nlocal[1] > 0)) }  /* I4 */
    od
}

init {
    byte i;
    atomic {
        i = 0;
        do
        :: i < N ->                      /* each node has started and registered as i:1 */
            up[i] = 1; phase[i] = SETTLED; inc[i] = 1; subops[i] = SUBOPS;
            reg[i] = 1; live[i] = 1;
            run node(i);
            i++
        :: i == N -> break
        od;
        i = 0
    }
}
