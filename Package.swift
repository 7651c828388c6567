// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "montana-alliance",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "montana", targets: ["montana"]),
        .executable(name: "montana-fuzz", targets: ["MontanaFuzz"]),
        .executable(name: "montana-abuse", targets: ["MontanaAbuse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    ],
    targets: [
        // Byte-exact codecs: no crypto, no I/O.
        .target(name: "MontanaWire", swiftSettings: strict),
        // Keys, identities, Noise_PQ XX, transport frames, preface, IBT proofs.
        .target(name: "MontanaCrypto", dependencies: [
            "MontanaWire",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // Sans-I/O session layers: resumable transport, yamux, multistream-select.
        .target(name: "MontanaSession", dependencies: [
            "MontanaWire",
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // Linux calls Glibc's Swift module lacks (splice(2), pipe2, epoll, SO_COOKIE): the front's kernel relay.
        .target(name: "CMontanaLinux"),
        // SwiftNIO: carriers, preface handler, splice, session handlers.
        .target(name: "MontanaTransport", dependencies: [
            "MontanaCrypto", "MontanaSession", "MontanaWire", "CMontanaLinux",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // libmaxminddb from Debian (libmaxminddb-dev): reads MaxMind/DB-IP .mmdb GeoIP databases.
        .systemLibrary(name: "CMaxMindDB", path: "Sources/CMaxMindDB", pkgConfig: "libmaxminddb",
                       providers: [.apt(["libmaxminddb-dev"])]),
        // The alliance's public files, endorsements, record validation, the SQLite directory store
        // (GRDB), corroboration, GeoIP, subscriptions and member links.
        .target(name: "MontanaDirectory", dependencies: [
            "MontanaCrypto", "MontanaWire", "CMaxMindDB",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: strict),
        .target(name: "MontanaExit", dependencies: [
            "MontanaCrypto", "MontanaSession", "MontanaTransport", "MontanaWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // The reachability map (PROTOCOL.md 9): votes per source group, quorum, bounds; sans I/O.
        .target(name: "MontanaReachability", dependencies: [
            "MontanaWire",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], swiftSettings: strict),
        .target(name: "MontanaClient", dependencies: [
            "MontanaCrypto", "MontanaSession", "MontanaTransport", "MontanaWire", "MontanaReachability",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        .target(name: "MontanaNode", dependencies: [
            "MontanaCrypto", "MontanaSession", "MontanaTransport", "MontanaExit", "MontanaClient", "MontanaWire", "MontanaDirectory",
            "MontanaReachability",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "TOMLKit", package: "TOMLKit"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: strict),
        // Conformance vectors: generates ours, checks any file in the shared schema.
        .target(name: "MontanaConformance", dependencies: [
            "MontanaCrypto", "MontanaWire", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        .executableTarget(name: "montana", dependencies: [
            "MontanaNode", "MontanaCrypto", "MontanaWire", "MontanaConformance", "MontanaDirectory", "MontanaTransport",
            "MontanaClient", "MontanaReachability",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        // One entry point per decoder, shared by the libFuzzer binary and the unit tests.
        .target(name: "MontanaFuzzTargets", dependencies: [
            "MontanaCrypto", "MontanaWire", "MontanaSession", "MontanaClient", "MontanaExit", "MontanaTransport", "MontanaDirectory",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ], swiftSettings: strict),
        .executableTarget(name: "MontanaFuzz", dependencies: ["MontanaFuzzTargets"], swiftSettings: strict),
        // scripts/abuse: the hardening issue's attacks against a running demo, with real sockets.
        .executableTarget(name: "MontanaAbuse", dependencies: [
            "MontanaCrypto", "MontanaSession", "MontanaTransport", "MontanaWire", "MontanaNode",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        .testTarget(name: "MontanaWireTests", dependencies: ["MontanaWire"]),
        .testTarget(name: "MontanaCryptoTests", dependencies: ["MontanaCrypto", "MontanaWire", "MontanaConformance", "MontanaFuzzTargets"],
                    resources: [.copy("Resources")]),
        .testTarget(name: "MontanaSessionTests", dependencies: ["MontanaSession", "MontanaWire"],
                    resources: [.copy("Resources")]),
        .testTarget(name: "MontanaExitTests", dependencies: ["MontanaExit", "MontanaWire"]),
        .testTarget(name: "MontanaClientTests", dependencies: ["MontanaClient", "MontanaWire", "MontanaReachability"]),
        .testTarget(name: "MontanaTransportTests", dependencies: [
            "MontanaTransport", "MontanaCrypto", "MontanaSession", "MontanaFuzzTargets", "MontanaWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
        ]),
        // Starts real `montana` processes on loopback and drives them with curl.
        .testTarget(name: "MontanaEndToEndTests", dependencies: [
            "MontanaCrypto", "MontanaWire", "MontanaTransport", "MontanaSession", "MontanaNode", "MontanaDirectory",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], resources: [.copy("Resources")]),
        .testTarget(name: "MontanaDirectoryTests", dependencies: ["MontanaDirectory", "MontanaCrypto", "MontanaWire"],
                    resources: [.copy("Resources")]),
        .testTarget(name: "MontanaNodeTests", dependencies: [
            "MontanaNode", "MontanaExit", "MontanaCrypto", "MontanaWire", "MontanaDirectory",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ]
)
