// SPDX-License-Identifier: MIT
/*
 * The buffer pool (struct nk_bufpool, conn.h): the data area's fixed-size
 * buffers, who holds them, and the send window's accounting. Async SENDs
 * may hold at most send_cap buffers, so receives, accepts and options
 * never starve (docs/abi.md section 4).
 */
#include <errno.h>
#include <pthread.h>

#include "conn.h"
#include "shim.h"

/* ------------------------------------------------------------------------ */
/* Buffers (struct nk_bufpool). */

uint8_t *nk_buf__ptr(int idx)
{
	return C.bp.data + (size_t)idx * C.bp.buf_size;
}

uint32_t nk_buf__off(int idx)
{
	return (uint32_t)idx * C.bp.buf_size;
}

static int buf_take(void)
{
	int idx = -1;

	pthread_mutex_lock(&C.bp.buf_lock);
	if (C.bp.nfree)
		idx = (int)C.bp.free_bufs[--C.bp.nfree];
	pthread_mutex_unlock(&C.bp.buf_lock);
	return idx;
}

void nk_buf__free(int idx)
{
	pthread_mutex_lock(&C.bp.buf_lock);
	if (C.bp.free_bufs && C.bp.nfree < C.bp.nr_bufs)
		C.bp.free_bufs[C.bp.nfree++] = (uint32_t)idx;
	pthread_mutex_unlock(&C.bp.buf_lock);
}

int nk_buf__alloc_spare(void)
{
	int idx = -1;

	/* An older nkd refuses the flag as malformed. */
	if (!(C.at.features & NK_FEAT_RECV_PREFETCH))
		return -1;
	pthread_mutex_lock(&C.bp.buf_lock);
	/* Read-ahead must never starve sends and blocking receives. */
	if (C.bp.nfree > C.bp.nr_bufs / 2)
		idx = (int)C.bp.free_bufs[--C.bp.nfree];
	pthread_mutex_unlock(&C.bp.buf_lock);
	return idx;
}

/* A buffer for an async SEND, within send_cap. */
static int buf_take_send(void)
{
	int idx = -1;

	pthread_mutex_lock(&C.bp.buf_lock);
	if (C.bp.nfree && C.bp.send_bufs < C.bp.send_cap) {
		idx = (int)C.bp.free_bufs[--C.bp.nfree];
		C.bp.send_bufs++;
	}
	pthread_mutex_unlock(&C.bp.buf_lock);
	return idx;
}

/* Give back a buffer from nk_buf__alloc_send(). */
void nk_bufpool__free_send(int idx)
{
	pthread_mutex_lock(&C.bp.buf_lock);
	if (C.bp.send_bufs)
		C.bp.send_bufs--;
	pthread_mutex_unlock(&C.bp.buf_lock);
	nk_buf__free(idx);
}

static int buf_alloc(bool send, bool wait, int64_t deadline_ns)
{
	for (;;) {
		uint32_t g = nk_ring__gen();
		int idx = send ? buf_take_send() : buf_take(), err;

		if (idx >= 0)
			return idx;
		nk_ring__poll();
		idx = send ? buf_take_send() : buf_take();
		if (idx >= 0)
			return idx;
		if (!wait)
			return -EAGAIN;
		err = nk_ring__wait_progress(g, deadline_ns, true);
		if (err == -ETIMEDOUT)
			return -EAGAIN;
		if (err)
			return err;
	}
}

int nk_buf__alloc(bool wait, int64_t deadline_ns)
{
	return buf_alloc(false, wait, deadline_ns);
}

int nk_buf__alloc_send(bool wait, int64_t deadline_ns)
{
	return buf_alloc(true, wait, deadline_ns);
}

uint32_t nk_conn__send_charge(uint32_t bytes)
{
	return bytes > C.bp.send_charge ? bytes : C.bp.send_charge;
}
