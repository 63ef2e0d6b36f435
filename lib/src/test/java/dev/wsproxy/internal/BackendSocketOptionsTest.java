package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;

import org.junit.jupiter.api.Test;

/** The options of the backend legs' sockets, set by the proxy's client connector before each connect. */
class BackendSocketOptionsTest {

    @Test
    void anUnboundSocketGetsNoDelayAndNoOptionsOfABoundAddress() throws Exception {
        WebSocketEndPoints.Client connector = (WebSocketEndPoints.Client) WebSocketEndPoints.clientConnector();
        connector.setReceiveBufferSize(96 * 1024);

        try (SocketChannel channel = SocketChannel.open()) {
            connector.configure(channel);

            assertThat(channel.getOption(StandardSocketOptions.TCP_NODELAY)).isTrue();
            assertThat(channel.getOption(StandardSocketOptions.SO_RCVBUF)).isGreaterThanOrEqualTo(96 * 1024);
            assertThat(channel.getOption(StandardSocketOptions.SO_REUSEADDR)).isFalse();
        }
    }

    @Test
    void aSocketToBindGetsWhatJettySets() throws Exception {
        WebSocketEndPoints.Client connector = (WebSocketEndPoints.Client) WebSocketEndPoints.clientConnector();
        connector.setBindAddress(new InetSocketAddress("127.0.0.1", 0));

        try (SocketChannel channel = SocketChannel.open()) {
            connector.configure(channel);

            assertThat(channel.getOption(StandardSocketOptions.TCP_NODELAY)).isTrue();
            assertThat(channel.getOption(StandardSocketOptions.SO_REUSEADDR)).isTrue();
        }
    }
}
