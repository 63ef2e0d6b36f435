/**
 * The implementation of wsproxy. Nothing here is API: it may change at any time.
 */
@NullMarked
package dev.wsproxy.internal;

import org.jspecify.annotations.NullMarked;
