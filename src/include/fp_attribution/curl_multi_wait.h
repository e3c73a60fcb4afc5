/*-------------------------------------------------------------------------
 *
 * curl_multi_wait.h
 *	  Waiting on a libcurl multi handle and the process latch together.
 *
 * Copyright (c) 2026, fp_attribution developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef FP_ATTRIBUTION_CURL_MULTI_WAIT_H
#define FP_ATTRIBUTION_CURL_MULTI_WAIT_H

#include <curl/curl.h>

extern void fp_attribution_check_curl_multi(CURLMcode mc);
extern bool fp_attribution_curl_multi_sleep(CURLM *multi, bool busy,
											bool writes_stalled, bool latch,
											long timeout_ms,
											uint32 wait_event_info);

#endif							/* FP_ATTRIBUTION_CURL_MULTI_WAIT_H */
