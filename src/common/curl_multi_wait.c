/*-------------------------------------------------------------------------
 *
 * curl_multi_wait.c
 *	  Waiting on a libcurl multi handle and the process latch together,
 *	  for the workers that send HTTP requests: the exporter (otlp_http.c)
 *	  and the postback worker (postback_http.c).
 *
 * libcurl tells which sockets it waits on (curl_multi_fdset) and for how
 * long (curl_multi_timeout); they join the latch in one WaitEventSet, so
 * a request never delays the latch, nor the latch a request.  While a
 * transfer is in flight the sleep is capped at MAX_TRANSFER_SLEEP_MS, the
 * safety net libcurl's documentation asks for when it names no socket
 * (connection set-up).  The callers run curl_multi_perform afterwards,
 * whatever woke them.
 *
 * A caller whose transfers sent nothing after a wake-up for a writable
 * socket may say so (writes_stalled): the sockets' writability is then
 * left out, and the sleep capped at STALLED_WRITE_SLEEP_MS instead.
 * libcurl 7.88 asks to write on an HTTP/2 connection whose send window
 * the peer has not opened yet; the socket is writable, so every wait
 * returned at once and the exporter spun through waits and
 * curl_multi_perform calls until the peer's WINDOW_UPDATE came (gRPC
 * requests larger than the 64 kB initial window: 3-4x the CPU per record
 * it takes now).  The WINDOW_UPDATE is a read, which still wakes the
 * sleep; the cap bounds the delay of any other write that no read
 * announces.
 *
 * Shared memory: none.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/select.h>

#include "miscadmin.h"
#include "storage/latch.h"

#include "fp_attribution/compat.h"
#include "fp_attribution/curl_multi_wait.h"

#define MAX_TRANSFER_SLEEP_MS 1000
#define STALLED_WRITE_SLEEP_MS 10

/* A curl_multi_* call that can only fail on a bug or out of memory */
void
fp_attribution_check_curl_multi(CURLMcode mc)
{
	if (mc != CURLM_OK)
		elog(ERROR, "libcurl multi interface failed: %s", curl_multi_strerror(mc));
}

/*
 * Sleep until the latch is set (unless latch is false: a caller that
 * knows it has work already), one of multi's transfers (busy: it has
 * some) can make progress or timeout_ms pass; with writes_stalled, not
 * for a socket's writability (see the file banner).  Returns whether a
 * writable socket ended the sleep.  Exits on postmaster death; the caller
 * resets the latch.
 */
bool
fp_attribution_curl_multi_sleep(CURLM *multi, bool busy, bool writes_stalled,
								bool latch, long timeout_ms, uint32 wait_event_info)
{
	WaitEventSet *set;
	WaitEvent	event;
	int			n;
	fd_set		rd,
				wr,
				ex;
	int			max_fd = -1;
	int			nevents = 2;

	if (busy)
	{
		long		curl_ms;

		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_ZERO(&ex);
		fp_attribution_check_curl_multi(curl_multi_fdset(multi, &rd, &wr, &ex, &max_fd));
		fp_attribution_check_curl_multi(curl_multi_timeout(multi, &curl_ms));
		if (curl_ms >= 0)
			timeout_ms = Min(timeout_ms, curl_ms);
		timeout_ms = Min(timeout_ms, MAX_TRANSFER_SLEEP_MS);
		for (int fd = 0; fd <= max_fd; fd++)
		{
			if (writes_stalled && FD_ISSET(fd, &wr))
			{
				FD_CLR(fd, &wr);
				timeout_ms = Min(timeout_ms, STALLED_WRITE_SLEEP_MS);
			}
			if (FD_ISSET(fd, &rd) || FD_ISSET(fd, &wr))
				nevents++;
		}
	}
	set = FP_CREATE_WAIT_EVENT_SET(nevents);
	if (latch)
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int fd = 0; fd <= max_fd; fd++)
	{
		uint32		events = (FD_ISSET(fd, &rd) ? WL_SOCKET_READABLE : 0) |
			(FD_ISSET(fd, &wr) ? WL_SOCKET_WRITEABLE : 0);

		if (events)
			AddWaitEventToSet(set, events, fd, NULL, NULL);
	}
	/* one event is enough: curl_multi_perform looks at every socket */
	n = WaitEventSetWait(set, Max(timeout_ms, 0), &event, 1, wait_event_info);
	FreeWaitEventSet(set);
	return n > 0 && (event.events & WL_SOCKET_WRITEABLE) != 0;
}
