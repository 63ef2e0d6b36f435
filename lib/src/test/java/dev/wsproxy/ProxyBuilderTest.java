package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.time.Duration;

import org.junit.jupiter.api.Test;

/** The builder and the value types validate what they are given; no network. */
class ProxyBuilderTest {

    private static final Backend BACKEND = Backend.of("ws://127.0.0.1:9");

    @Test
    void refusesAProxyWithoutRoutes() {
        assertThatThrownBy(() -> ProxyBuilder.create().build())
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("no route");
    }

    @Test
    void refusesARouteWithoutBackends() {
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", r -> r.maxMessageSize(10)).build())
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("/ws/ has no backends");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least one backend");
    }

    @Test
    void refusesMalformedAndDuplicateRoutePrefixes() {
        assertThatThrownBy(() -> ProxyBuilder.create().route("ws/", BACKEND))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("pathPrefix: 'ws/'");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/a%2F/", BACKEND))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", BACKEND).route("/ws/", BACKEND))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not routed yet");
    }

    @Test
    void validatesSettersAtOnce() {
        ProxyBuilder builder = ProxyBuilder.create();
        assertThatThrownBy(() -> builder.listen("127.0.0.1", 70000))
                .hasMessage("port: 70000 (expected: 0 to 65535)");
        assertThatThrownBy(() -> builder.maxMessageSize(0)).hasMessage("maxMessageSize: 0 (expected: > 0)");
        assertThatThrownBy(() -> builder.drainTimeout(Duration.ofSeconds(-1)))
                .hasMessage("drainTimeout: PT-1S (expected: >= 0)");
        assertThatThrownBy(() -> builder.backendSelector(null)).isInstanceOf(NullPointerException.class);
    }

    @Test
    void validatesTheCapOnBackendHandshakesInFlight() {
        assertThatThrownBy(() -> ProxyBuilder.create().maxPendingBackendHandshakes(0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("maxPendingBackendHandshakes: 0 (expected: > 0)");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", r -> r.backends(BACKEND)
                .maxPendingBackendHandshakes(-1)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("maxPendingBackendHandshakes: -1 (expected: > 0)");
        assertThat(ProxyBuilder.create().maxPendingBackendHandshakes(1)
                .route("/ws/", r -> r.backends(BACKEND).maxPendingBackendHandshakes(Integer.MAX_VALUE))
                .build()).isNotNull();
    }

    @Test
    void validatesTimeouts() {
        assertThatThrownBy(() -> TimeoutPolicy.custom().connect(Duration.ZERO))
                .hasMessage("connect: PT0S (expected: > 0)");
        assertThatThrownBy(() -> TimeoutPolicy.idle(Duration.ofSeconds(-1)))
                .hasMessage("idle: PT-1S (expected: >= 0)");
        TimeoutPolicy policy = TimeoutPolicy.custom().connect(Duration.ofSeconds(3)).idle(Duration.ZERO)
                .close(Duration.ofSeconds(2)).maxLifetime(Duration.ofHours(8)).build();
        assertThat(policy.connectTimeout()).isEqualTo(Duration.ofSeconds(3));
        assertThat(policy.idleTimeout()).isEqualTo(Duration.ZERO);
        assertThat(policy.closeTimeout()).isEqualTo(Duration.ofSeconds(2));
        assertThat(policy.maxLifetime()).isEqualTo(Duration.ofHours(8));
        assertThat(TimeoutPolicy.ofDefaults().idleTimeout()).isEqualTo(Duration.ofHours(1));
        assertThat(TimeoutPolicy.ofDefaults().connectTimeout()).isEqualTo(Duration.ofSeconds(10));
    }

    @Test
    void normalisesBackendUris() {
        assertThat(Backend.of("http://h:1").uri()).isEqualTo(URI.create("ws://h:1"));
        assertThat(Backend.of("HTTPS://h/base/").uri()).isEqualTo(URI.create("wss://h/base/"));
        assertThat(Backend.of("ws://h:1").withWeight(3).weight()).isEqualTo(3);
        assertThat(Backend.of("ws://h:1")).isEqualTo(Backend.of("http://h:1"));
        assertThat(Backend.of("ws://h:1").withWeight(2)).isNotEqualTo(Backend.of("ws://h:1"));
        assertThatThrownBy(() -> Backend.of("ftp://h")).hasMessageContaining("expected: scheme ws, wss, http or https");
        assertThatThrownBy(() -> Backend.of("ws:///path")).hasMessageContaining("expected: a host");
        assertThatThrownBy(() -> Backend.of("ws://user@h")).hasMessageContaining("no user info");
        assertThatThrownBy(() -> Backend.of("ws://h/?q=1")).hasMessageContaining("no query");
        assertThatThrownBy(() -> Backend.of("ws://h").withWeight(0)).hasMessageContaining("1 to 1000");
    }

    @Test
    void keepsBuiltProxiesIndependentOfTheBuilder() {
        ProxyBuilder builder = ProxyBuilder.create().route("/a/", BACKEND);
        WebSocketProxy first = builder.build();
        builder.route("/b/", BACKEND);
        WebSocketProxy derived = first.toBuilder().route("/c/", BACKEND).build();
        assertThat(first.toBuilder().build()).isNotSameAs(first);
        assertThat(derived).isNotNull();
        assertThatThrownBy(() -> first.toBuilder().route("/a/", BACKEND))
                .as("the derived builder has the original's routes").isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(first::uri).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void roundRobinGivesEachRouteItsOwnTurn() {
        BackendSelector shared = BackendSelector.roundRobin();
        BackendSelector one = shared.forRoute("/one/");
        BackendSelector two = shared.forRoute("/two/");
        assertThat(one).isNotSameAs(two);
    }
}
