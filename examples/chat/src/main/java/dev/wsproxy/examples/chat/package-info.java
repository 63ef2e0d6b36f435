/**
 * The chat demo: a Jetty WebSocket chat server behind wsproxy, which also serves the chat page. Start with
 * {@link dev.wsproxy.examples.chat.ChatDemo}.
 */
@NullMarked
package dev.wsproxy.examples.chat;

import org.jspecify.annotations.NullMarked;
