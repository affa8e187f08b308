/* SPDX-License-Identifier: MIT */
/*
 * CoreEngine internals shared by nkd's modules (core_engine.c, ctl.c,
 * placeholder.c, query.c and the NSMs). Nothing here is an API outside
 * nkd; the guest-facing contract is include/netkernel/.
 *
 * Object model (docs/nkd.md):
 *   guest  - a name with a policy; owns a socket handle table and quotas.
 *   conn   - one attached process: control socket + region + doorbell.
 *            Holds references on sockets of its guest.
 *   sock   - a guest socket: handle, NSM state, readiness placeholder.
 *            Alive while a conn or a hand-over holds a reference.
 *   op     - one SQE taken from a ring and not yet completed.
 *   handover - references parked for a fork child or an exec'd image.
 */
#ifndef NKD_ENGINE_H
#define NKD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <linux/time_types.h>

#include "netkernel/abi.h"
#include "netkernel/ctl.h"
#include "netkernel/spin.h"

#include "admin.h"
#include "budget.h"
#include "bufown.h"
#include "config.h"
#include "guest_ids.h"
#include "idlerest.h"
#include "list.h"
#include "nsm.h"
#include "portown.h"
#include "ratelimit.h"
#include "nksched.h"

#include "netkernel/version.h"

#define NK_VERSION NK_VERSION_STRING /* nkctl status, nkd --version */

/* Handle = generation (12 bits) << 20 | index (20 bits, 0 unused). */
#define NK_HANDLE_IDX_BITS 20
#define NK_HANDLE_IDX_MASK ((1u << NK_HANDLE_IDX_BITS) - 1)
#define NK_HANDLE_GEN_MASK 0xfffu

/* SQEs one guest may have taken per loop pass, times its weight. */
#define NK_POLL_BUDGET 32u
/*
 * Spinning after the last piece of work (include/netkernel/spin.h): the
 * budget adapts between 0 and NK_SPIN_BUSY_NS, or NK_SPIN_FEW_CPUS_NS on
 * a machine with at most 2 online CPUs, where every spinning cycle is
 * taken from a guest or its peer (NK_SPIN_MAX_NS in the environment
 * overrides the cap). Work that is not real (NOPs, doorbells) keeps nkd
 * awake for at most NK_SPIN_NS. A wake-up costs ~21 us on the target
 * machine, so a steady flow of requests should find nkd awake; an idle
 * nkd must not spin at all.
 */
#define NK_SPIN_NS 50000ll
#define NK_SPIN_BUSY_NS 1000000ll
#define NK_SPIN_FEW_CPUS_NS 50000ll
/* Fork hand-overs never committed are dropped after this. */
#define NK_HANDOVER_TTL_NS (10ll * 1000000000ll)
/*
 * SENDs of a process that is gone may finish for this long; then they are
 * cancelled, so a peer that never reads cannot pin a dead process's
 * region. Matches the shim's own exit drain.
 */
#define NK_DETACH_LINGER_NS (10ll * 1000000000ll)

struct nk_ctl;
struct nk_ctl_client;
struct nk_hring;
struct nk_loop;
struct nk_phpool;
struct nk_region;
struct nk_resolver;

struct nk_counters {
	uint64_t bytes_tx, bytes_rx, ops, errors, abuse, disconnects;
	/* rxpark.c: standing RECVs that waited at nkd and got data pushed */
	uint64_t rx_pushed;
};

struct nk_nsm {
	struct nk_nsm_conf conf;
	const struct nk_nsm_ops *ops;
	void *priv;
	int netns_fd; /* -1: nkd's own namespace */
	struct nk_resolver *resolver;
	uint32_t nr_guests, nr_socks;
	struct nk_portown *ports; /* port owners, local addresses */
};

struct nk_guest {
	struct nk_list link; /* engine->guests */
	struct nk_guest_conf conf;
	bool from_config;
	uint32_t id;
	struct nk_nsm *nsm;
	struct nk_list conns;
	uint32_t nr_conns;
	/* Handle table: socks[idx], gens[idx]; idx 0 is never used. */
	struct nk_sock **socks;
	uint16_t *gens;
	uint32_t cap, nr_socks, next_idx;
	uint32_t inflight; /* ops taken and not completed */
	uint32_t nr_handovers;
	/*
	 * An unknown guest with nothing left in use is kept this long (ns
	 * clock) so its counters survive between runs of its programs.
	 */
	int64_t idle_since;
	struct nk_counters c;
	struct nk_refusals refused; /* refusal.c */
	struct nk_admin_guest admin; /* admin.c */
	/* Not from the config: the identity that first attached it owns it */
	uid_t owner_uid;
	uint64_t owner_netns_dev, owner_netns_ino;
	/* budget.c: sockets and region bytes counted, RESOLVEs queued */
	uint32_t bsocks, nr_resolve;
	uint64_t bmem, bshmq; /* bshmq: shm queues its sends hold (in bmem) */
	uint64_t rxback_bytes; /* given back unread on its sockets (rxback.c) */
	struct nk_guest_rate rate; /* ratelimit.c: rate_tx=, rate_rx= */
	struct nk_guest_sched sched; /* sched.c: fair share by weight= */
	struct nk_idlerest rest; /* idlerest.c: rings skipped while spinning */
};

/* Readiness placeholder (docs/abi.md §6). */
struct nk_ph {
	struct nk_list plink; /* placeholder.c's list of unfinished work */
	uint8_t todo; /* what a byte budget left unfinished */
	int app; /* nkd's duplicate of the app end, -1 if none */
	int nkd; /* the nkd end; -1 once hung up (closed) */
	bool readable; /* bytes queued towards the app end */
	/* The guest emptied its end while nkd had bytes going to it: a
	 * readable byte queued since may be there though readable is not. */
	bool stale;
	bool blocked; /* app end's send direction filled: unwritable */
	bool rdhup; /* nkd end shut for writing: peer's FIN mirrored */
	bool sndbuf; /* the app end's small SO_SNDBUF is set (first fill) */
	/* A VM guest's: vm.c mirrors each change into the VM (vm_id). */
	uint64_t vm_ref, vm_id;
};

enum nk_sock_state {
	NK_SS_UNBOUND,
	NK_SS_BOUND,
	NK_SS_LISTEN,
	NK_SS_CONNECTING,
	NK_SS_ESTABLISHED,
	NK_SS_CLOSE_WAIT,
	NK_SS_CLOSED,
};

struct nk_sock {
	struct nk_guest *guest;
	struct nk_nsm *nsm;
	void *nsm_priv;
	uint32_t handle;
	int family, type, protocol;
	enum nk_sock_state state;
	bool closing; /* last reference dropped; NSM tearing down */
	bool gone; /* NSM done; freed when nr_ops drops to 0 */
	int so_error; /* result of a background connect, for SO_ERROR */
	void **holders; /* conns and hand-overs holding a reference */
	uint32_t nr_holders, cap_holders;
	uint32_t nr_ops;
	/* SENDs taken, not completed: sum of max(len, conn's send_charge) */
	uint64_t send_inflight;
	uint32_t send_window; /* abi.md §5: SO_SNDBUF only shrinks it */
	/* sendq.c: ops held in order (an NSM may read it: more SENDs wait) */
	struct nk_list sendq; /* nk_req.qlink */
	bool send_busy; /* one SEND of it is in the NSM */
	bool sendq_pumping, release_held;
	uint32_t rate_held; /* ops held by ratelimit.c */
	uint32_t sched_held; /* ops held by sched.c */
	struct nk_ph ph;
	uint64_t ph_ino, ph_dev;
	uint32_t conn_id; /* connection that created it, for listings */
	uint64_t bytes_tx, bytes_rx, ops, errors;
	struct nk_portclaim pc; /* portown.c */
	struct nk_rxback *rxback; /* rxback.c: given back unread; NULL: none */
	struct nk_req *rx_standing; /* rxpark.c: its standing RECV, if any */
};

struct nk_conn {
	struct nk_list glink; /* guest->conns */
	struct nk_list wlink; /* engine->wake: CQEs posted this pass */
	uint32_t id;
	struct nk_guest *guest;
	struct nk_ctl_client *ctl;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct nk_region *region;
	struct nk_hring *qs[NK_MAX_QSETS];
	bool qdirty[NK_MAX_QSETS];
	uint32_t nr_qsets, rr;
	int doorbell;
	struct nk_phpool *phpool; /* placeholders made for it, not bound */
	uint64_t vm_ref; /* a VM guest's process: vm.c's name for it, or 0 */
	uint8_t *data;
	uint32_t buf_size, nr_bufs, send_window;
	uint32_t send_charge; /* least a SEND counts against the window */
	struct nk_bufown *owned;
	uint32_t inflight;
	uint32_t abuse;
	bool dead;
	bool cq_blocked; /* SQEs waiting for CQ room at the last pass */
	struct nk_list ops; /* nk_op.clink */
	uint32_t refs; /* ops + temporary holds; freed at 0 when dead */
	struct nk_list dlink; /* engine->lingering: dead, SENDs still going */
	int64_t linger_deadline;
	uint64_t bmem; /* region bytes counted in the budget, 0: none */
};

struct nk_req {
	uint32_t slot, gen;
	bool used;
	struct nk_list clink; /* conn->ops */
	struct nk_list qlink; /* the NSM's while queued there; sendq.c's */
	struct nk_conn *conn;
	struct nk_engine *e;
	uint16_t qset;
	uint8_t opcode, sqe_flags;
	uint64_t user_data;
	struct nk_sock *sock;
	int buf_idx;
	uint8_t *buf; /* nkd's mapping of the guest buffer */
	uint32_t len, msg_flags, timeout_ms, arg;
	uint64_t arg64;
	int level, optname;
	struct sockaddr_storage sa;
	socklen_t salen;
	uint32_t done; /* bytes sent so far (short sends) */
	bool cancelled; /* guest CANCEL, timeout or teardown */
	bool timed_out; /* its timeout passed (optimer.c) */
	struct nk_list tlink; /* engine->timed, by deadline */
	int64_t deadline; /* ns clock; with timeout_ms only */
	bool held; /* on sock->sendq, not in the NSM (sendq.c) */
	bool order_head; /* the SEND of its socket the NSM has (sendq.c) */
	bool answered; /* CQE posted early: the completion posts none */
	bool in_nsm; /* a request is in flight in the NSM */
	/* rxpark.c: a standing RECV; parked (socket empty) or waking (on
	 * engine->rx_wake by qlink, due to go down) */
	bool standing, parked, waking;
	bool announced; /* its NK_CQE_F_MORE posted (once per op) */
	unsigned wake_ev; /* revents its wake-ups held back from the placeholder */
	/* ACCEPT with NK_SQE_F_PH: the new socket's placeholder, taken out
	 * of the pool (app end, nkd end), -1 if none (abi.md §6 "Pool") */
	int ph_app, ph_nkd;
	/* ratelimit.c: bucket (1 + NK_RATE_*, 0: none), bytes reserved,
	 * tokens paid (it goes down without another look) */
	int8_t rate_dir;
	bool rate_pass;
	uint32_t rate_res;
	/* sched.c: direction charged (1 + NK_SCHED_*, 0: none), waiting
	 * there (since when, ns), its turn came (it goes down without
	 * another look) */
	int8_t sched_dir;
	bool sched_held, sched_pass;
	int64_t sched_since;
	/* The NSM's own per-operation state (nsm.h); the engine never
	 * reads it (op_alloc zeroes it). */
	_Alignas(16) unsigned char scratch[NK_NSM_SCRATCH];
};

struct nk_handover {
	uint32_t slot, gen;
	bool used;
	struct nk_guest *guest;
	uint64_t token;
	bool is_exec, committed;
	pid_t owner_pid; /* the process that asked for the token */
	pid_t child_pid; /* FORK: committed child checked to be one, else 0 */
	int pidfd;
	int64_t deadline_ns; /* 0: none */
	struct nk_sock **socks;
	uint32_t nr_socks;
};

#define NK_BARRIERS_MAX 64u

struct nk_engine {
	struct nk_config cfg;
	struct nk_loop *loop;
	struct nk_ctl *ctl;
	struct nk_vmset *vms; /* VM guests' channels and files (vm.c) */
	struct nk_nsm *nsms;
	unsigned nr_nsms;
	struct nk_list guests;
	uint32_t nr_guests;
	struct nk_guest_ids guest_ids; /* ids of live guest objects */
	uint32_t nr_conns, next_conn_id;
	uint32_t nr_conn_objs; /* allocated, including dead ones draining */
	uint64_t nr_socks;
	uint64_t epoch;
	int64_t start_ns;
	struct nk_req **ops;
	uint32_t ops_cap, *ops_free, nr_ops_free;
	uint32_t rate_held; /* ops held by ratelimit.c, all guests */
	uint32_t sched_held; /* ops held by sched.c, all guests */
	struct nk_handover **hos;
	uint32_t hos_cap;
	struct nk_list wake;
	struct nk_list rx_wake; /* rxpark.c: standing RECVs due to go down */
	struct nk_list lingering; /* dead conns whose SENDs may finish */
	int64_t next_deadline; /* earliest hand-over/linger expiry, 0: none */
	struct nk_list timed; /* ops with a timeout (optimer.c) */
	bool gc; /* a guest may have become unused */
	bool stop;
	int resolve_efd; /* resolver workers ring this */
	int sigfd;
	uint64_t loops, sleeps, rests; /* rests: idlerest.c, all guests */
	struct nk_spin spin; /* the run loop's, docs/nkd.md */
	struct nk_admin_state admin; /* admin.c */
	struct nk_budget budget;
	/* Work units this pass that did nothing real (NOPs, refusals,
	 * failures, doorbells): they never keep the loop spinning. */
	uint32_t idle_work;
	/* NOPs answered at the end of the pass: a NOP is a barrier (abi.md
	 * §5). Each holds a reference on its conn. */
	struct nk_barrier {
		struct nk_conn *c;
		uint64_t user_data;
		uint16_t q;
	} barriers[NK_BARRIERS_MAX];
	uint32_t nr_barriers;
};

int64_t nk_now_ns(void);

/* Lifecycle, called from main.c. */
int nk_engine__create(const struct nk_config *cfg, struct nk_engine **out);
void nk_engine__destroy(struct nk_engine *e);
int nk_engine__run(struct nk_engine *e);
/* One pass over the guests' rings, no sleeping (unit tests); SQEs taken. */
unsigned nk_engine__step(struct nk_engine *e);
/* Cancels the ops whose timeout passed by now (optimer.c); how many. */
unsigned nk_engine__expire(struct nk_engine *e, int64_t now);

/* Control plane, called from ctl.c. */
struct nk_attach {
	const struct nk_ctl_hello *hello;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct nk_ctl_client *ctl;
	const struct nk_peer *peer; /* what the kernel says about the caller */
	bool probe; /* NK_HELLO_F_PROBE: decide, attach nothing */
	/* out */
	char why[200]; /* a refusal's reason, for the WELCOME and the log */
	char guest[NK_GUEST_NAME_MAX]; /* the guest picked */
	struct nk_conn *conn;
	struct nk_ctl_handle *handles; /* malloc'd, caller frees */
	uint32_t nr_handles;
	int pool_fd; /* guest end of the placeholder pool channel; caller
		      * sends it in WELCOME and closes it */
};
int nk_engine__attach(struct nk_engine *e, struct nk_attach *a);
/* The conn's control socket is gone (or nkd kills it). */
void nk_engine__detach(struct nk_engine *e, struct nk_conn *c, bool abnormal);
/* PH_BIND: pool placeholder id mirrors handle (0: given back). */
int nk_engine__placeholder(struct nk_engine *e, struct nk_conn *c,
			   const struct nk_ctl_ph_bind *b);
int nk_engine__handover(struct nk_engine *e, struct nk_conn *c, bool is_exec,
			uint64_t *token);
int nk_engine__handover_commit(struct nk_engine *e, struct nk_conn *c,
			       uint64_t token, pid_t child);
int nk_engine__handover_abort(struct nk_engine *e, struct nk_conn *c,
			      uint64_t token);
struct nk_nsm *nk_engine__conn_nsm(struct nk_conn *c);

/* The operator's commands (admin.c). */
struct nk_guest *nk_engine__guest_find(struct nk_engine *e, const char *name);
/* The NSM named name ("": the first), or NULL. */
struct nk_nsm *nk_engine__nsm_by_name(struct nk_engine *e, const char *name);
struct nk_guest *nk_engine__guest_new(struct nk_engine *e,
				      const struct nk_guest_conf *conf,
				      bool from_config);
/*
 * Disconnects every process of g (their control sockets close, their rings
 * stop), drops its hand-overs and cancels what its exited processes still
 * send: all its sockets close. The guest and its counters stay.
 */
void nk_engine__evict(struct nk_engine *e, struct nk_guest *g);

/* Called by NSMs. */
/* The op a completion names, or NULL if slot/gen are stale. */
struct nk_req *nk_engine__op_get(struct nk_engine *e, uint32_t slot,
				 uint32_t gen);
void nk_engine__op_done(struct nk_req *op, int res, uint32_t cqe_flags,
			uint32_t aux, uint32_t handle);
/* Engine-internal (sendq.c): hands op to its NSM's op for its opcode;
 * posts op's CQE now, its completion later posts none. */
void nk_engine__nsm_call(struct nk_req *op);
void nk_engine__op_answer(struct nk_req *op, int res);
/* A CQE for op that does not finish it (rxpark.c: NK_CQE_F_MORE). */
void nk_engine__op_post(struct nk_req *op, int res, uint32_t cqe_flags);
/* Placeholder readable exactly when the socket is (the guest holds none). */
void nk_engine__sock_recheck(struct nk_sock *s);
/* A connected stream's end states onto the placeholder (abi.md §6). */
void nk_engine__sock_mirror_hup(struct nk_sock *s, unsigned ev);
/* A second op of op's conn and socket, no buffer, answered (no CQE). */
struct nk_req *nk_engine__op_dup(struct nk_req *op);
/* revents from the stack; arrival = new data/connection/error arrived. */
void nk_engine__sock_event(struct nk_engine *e, struct nk_sock *s,
			   unsigned revents, bool arrival);
void nk_engine__sock_gone(struct nk_engine *e, struct nk_sock *s);
/* A new socket for a completed ACCEPT, held by op->conn. */
int nk_engine__sock_accepted(struct nk_engine *e, struct nk_req *op,
			     struct nk_sock **out);

/* Placeholder mirroring (placeholder.c). */
void nk_ph__init(struct nk_ph *ph);
/* Takes ownership of both fds (a pool pair nkd made); 0. */
int nk_ph__attach(struct nk_ph *ph, int app_fd, int nkd_fd);
void nk_ph__close(struct nk_ph *ph);
/* want: readable; arrival: a new edge even if already readable. */
void nk_ph__set_readable(struct nk_ph *ph, bool want, bool arrival);
void nk_ph__set_writable(struct nk_ph *ph, bool want);
/* The guest emptied its app end itself (a standing RECV, rxpark.c). */
void nk_ph__guest_drained(struct nk_ph *ph);
/* The peer sent FIN: POLLRDHUP on the app end. */
void nk_ph__rdhup(struct nk_ph *ph);
/* The socket hung up (reset: with POLLERR); the app end stays so. */
void nk_ph__hangup(struct nk_ph *ph, bool reset);
/* Work a byte budget cut short: run a bounded share of it each pass. */
unsigned nk_ph__run_pending(void);
bool nk_ph__pending(void);

/* Holding (holding.c): random handle generations, bound tokens. */
uint16_t nk_rand__handle_gen(uint16_t old);
/* The parent pid of pid (nkd's pid namespace) or -errno. */
int nk_proc__ppid(pid_t pid);
/* May the process pid claim hand-over ho? */
bool nk_handover__claim_ok(const struct nk_handover *ho, pid_t pid);

/* Placeholder pool (ph_pool.c). */
int nk_phpool__create(struct nk_phpool **out, int *guest_end);
void nk_phpool__destroy(struct nk_phpool *p);
/* Sends up to n new placeholders, keeping NK_PH_POOL_MAX unbound at most. */
unsigned nk_phpool__fill(struct nk_phpool *p, unsigned n);
uint32_t nk_phpool__unbound(const struct nk_phpool *p);
/* Takes placeholder id out of the pool: its two fds, or -ENOENT. */
int nk_phpool__take(struct nk_phpool *p, uint64_t id, int *app, int *nkd);

/*
 * Identity (identity.c): which guest a caller is. pick chooses the config
 * entry (or defconf for an unknown guest) from the caller's facts and the
 * name it asked for ("" = let nkd pick); claim checks an existing guest
 * object belongs to the caller and records the owner of a new one. Both
 * return 0 or -errno with the reason in a->why.
 */
int nk_identity__pick(struct nk_engine *e, struct nk_attach *a,
		      struct nk_guest_conf *defconf,
		      const struct nk_guest_conf **conf);
int nk_identity__claim(struct nk_engine *e, struct nk_attach *a,
		       struct nk_guest *g, bool is_new);

/* Queries (query.c): JSON (or Prometheus for NK_QUERY_STATS). */
int nk_query__build(struct nk_engine *e, uint32_t what, char **text,
		    size_t *len);
const char *nk_sock_state__name(enum nk_sock_state st);

/* Control socket (ctl.c). */
int nk_ctl__create(struct nk_engine *e, const char *path, struct nk_ctl **out);
void nk_ctl__destroy(struct nk_ctl *c);
/* Closes a client whose conn the engine killed. */
void nk_ctl__drop(struct nk_ctl *c, struct nk_ctl_client *cl);
/*
 * A control connection nkd makes itself (vm.c: one per process of a VM):
 * fd is one end of a SOCK_SEQPACKET pair, peer its identity. 0 and the
 * client's slot and generation, or -errno (fd is closed).
 */
int nk_ctl__inject(struct nk_ctl *c, int fd, const struct nk_peer *peer,
		   uint32_t *slot, uint32_t *gen);
/* The conn attached on that client, or NULL (none yet, or gone). */
struct nk_conn *nk_ctl__conn_of(struct nk_ctl *c, uint32_t slot, uint32_t gen);

/* Resolver workers (resolve.c): getaddrinfo in an NSM's namespace. */
struct nk_resolve_job {
	struct nk_list link;
	uint64_t cookie; /* the requester, opaque to the worker */
	struct nk_guest *guest; /* its queue budget, never the worker's */
	struct nk_ctl_resolve req;
	/* out: the complete reply message */
	struct nk_ctl_resolve_reply *reply;
	size_t reply_len;
};
int nk_resolver__create(int netns_fd, const struct nk_nsm_conf *conf,
			int notify_fd, struct nk_resolver **out);
/* NK_CTL_DNS_SERVERS's answer (malloc'd): the NSM's nameservers. */
struct nk_ctl_resolve_reply *nk_resolver__dns_servers(struct nk_resolver *r,
						      uint64_t seq);
void nk_resolver__destroy(struct nk_resolver *r);
/* Fills job->reply with "try again" (EAI_AGAIN) without a lookup;
 * job->reply stays NULL without memory. */
void nk_resolver__refuse(struct nk_resolve_job *job);
/* Takes ownership of job. */
void nk_resolver__submit(struct nk_resolver *r, struct nk_resolve_job *job);
/* Finished job or NULL; the caller frees job->reply and job. */
struct nk_resolve_job *nk_resolver__take(struct nk_resolver *r);

#endif /* NKD_ENGINE_H */
