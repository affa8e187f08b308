// SPDX-License-Identifier: MIT
/*
 * The libc functions the shim interposes, looked up once with
 * dlsym(RTLD_NEXT). Every lookup is idempotent, so two threads racing
 * through nk_real__init() store the same pointers: no lock is needed, and
 * none may be taken here because dlsym can run from inside any wrapper.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim.h"

struct nk_real nk_real;
atomic_int nk_real_ready;

#define LOOK(fn)                                                      \
	__atomic_store_n((void **)&nk_real.fn, dlsym(RTLD_NEXT, #fn), \
			 __ATOMIC_RELAXED)

void nk_real__init(void)
{
	LOOK(socket);
	LOOK(socketpair);
	LOOK(bind);
	LOOK(listen);
	LOOK(accept);
	LOOK(accept4);
	LOOK(connect);
	LOOK(shutdown);
	LOOK(getsockname);
	LOOK(getpeername);
	LOOK(getsockopt);
	LOOK(setsockopt);
	LOOK(read);
	LOOK(write);
	LOOK(readv);
	LOOK(writev);
	LOOK(recv);
	LOOK(recvfrom);
	LOOK(recvmsg);
	LOOK(recvmmsg);
	LOOK(send);
	LOOK(sendto);
	LOOK(sendmsg);
	LOOK(sendmmsg);
	LOOK(syscall);
	LOOK(sendfile);
	LOOK(sendfile64);
	LOOK(__read_chk);
	LOOK(__recv_chk);
	LOOK(__recvfrom_chk);
	LOOK(fcntl);
	LOOK(fcntl64);
	LOOK(ioctl);
	LOOK(close);
	LOOK(close_range);
	LOOK(closefrom);
	LOOK(dup);
	LOOK(dup2);
	LOOK(dup3);
	LOOK(fork);
	LOOK(_Fork);
	LOOK(_exit);
	LOOK(_Exit);
	LOOK(execve);
	LOOK(execvpe);
	LOOK(fexecve);
	LOOK(getaddrinfo);
	LOOK(freeaddrinfo);
	LOOK(gethostbyname);
	LOOK(gethostbyname2);
	LOOK(gethostbyname_r);
	LOOK(gethostbyname2_r);
	LOOK(epoll_wait);
	LOOK(epoll_pwait);
	LOOK(poll);
	LOOK(ppoll);
	LOOK(select);
	LOOK(pselect);
	/* fcntl64 is the same entry point as fcntl on 64-bit glibc. */
	if (!nk_real.fcntl64)
		nk_real.fcntl64 = nk_real.fcntl;
	atomic_store_explicit(&nk_real_ready, 1, memory_order_release);
}
