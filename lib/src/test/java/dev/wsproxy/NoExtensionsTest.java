package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.RawHttp.Request;

/**
 * With {@link ProxyBuilder#compressionPassThrough(boolean)} off, the default, no extension is ever negotiated (matrix
 * rows F2 and F10; {@link CompressionPassThroughTest} for the setting on): a client that offers
 * {@code permessage-deflate} gets a
 * {@code 101} without it, and a compressed frame from it is a protocol error; a backend that accepts an extension
 * the proxy never offered is refused with {@code 502}. So no payload is ever inflated, and there is nothing to bomb.
 */
class NoExtensionsTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final List<TestBackend> testBackends = new ArrayList<>();
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        Collections.reverse(resources);
        Clients.tearDown(proxy, null, resources.toArray(AutoCloseable[]::new));
    }

    private void start(Backend backend) throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend).build();
        proxy.start();
    }

    @Test
    void closesACompressedFrameWith1002AfterDecliningDeflate() throws Exception {
        TestBackend backend = new TestBackend("b1");
        resources.add(backend);
        start(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(Request.upgrade("/deflate", RawHttp.host(proxy))
                    .add("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"));
            assertThat(response.status()).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Extensions")).as("deflate declined").isNull();

            // What a client that believed deflate was on would send: RSV1 set on a (compressed) text frame.
            byte[] compressed = RawFrames.text("would be deflated", true);
            compressed[0] |= 0x40;
            client.send(compressed);
            RawFrames.Frame close = client.readFrame();
            assertThat(close.opcode()).isEqualTo(RawFrames.CLOSE);
            assertThat(close.closeCode()).isEqualTo(1002);
        }
        assertThat(backend.nextClose().code()).isEqualTo(1001);
        assertThat(backend.texts).as("nothing of the compressed frame relayed").isEmpty();
    }

    @Test
    void answers502WhenTheBackendAcceptsAnExtensionThatWasNotOffered() throws Exception {
        RawBackend backend = RawBackend.answering(
                RawBackend.switchingWith("Sec-WebSocket-Extensions: permessage-deflate\r\n"));
        resources.add(backend);
        start(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(Request.upgrade("/deflate", RawHttp.host(proxy))
                    .add("Sec-WebSocket-Extensions", "permessage-deflate"));
            assertThat(response.status()).as("%s", response).isEqualTo(502);
            assertThat(response.header("Sec-WebSocket-Extensions")).isNull();
        }
        assertThat(backend.nextRequest().header("Sec-WebSocket-Extensions")).as("the proxy offered nothing").isNull();
        assertThat(backend.nextEnd(5)).as("backend connection").isIn("eof", "reset");
    }
}
