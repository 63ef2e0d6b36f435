package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The dot-segment check on raw paths, spellings Jetty's default URI compliance refuses itself included (a mounted proxy's server may allow them). */
class UpgradeChecksTest {

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {".", "..", "/.", "/..", "/a/./b", "/a/../b", "/a/..", "/a/..;x/b", "/a/.;x", "/a/%2e%2e/b",
            "/a/%2E./b", "/a/.%2e", "/a/%2e", "/a/%u002e%u002e/b", "/a/%U002E/b"})
    void findsDotSegments(String path) {
        assertThat(UpgradeChecks.hasDotSegment(path)).isTrue();
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"", "/", "/a", "/a.b/c", "/..a/b..", "/.../x", "/a/.b", "/a/b./", "/%2e%2f", "/a;..",
            "/a/%2ex", "//", "/a//b"})
    void passesOtherPaths(String path) {
        assertThat(UpgradeChecks.hasDotSegment(path)).isFalse();
    }
}
