namespace Mobility.Protocol.Tests;

/// <summary>
/// Fixed inputs and expected outputs computed outside this code base, once, with Python's
/// <c>hashlib</c> and the <c>cryptography</c> package and cross-checked with OpenSSL 3.0
/// (<c>openssl pkeyutl -sign -rawin</c>, <c>openssl dgst -sha256</c>). See docs/protocol.md, "Worked example".
/// </summary>
internal static class TestVectors
{
    /// <summary>RFC 8032 section 7.1, TEST 1: secret key (seed).</summary>
    public const string Rfc8032Test1Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    /// <summary>RFC 8032 section 7.1, TEST 1: public key.</summary>
    public const string Rfc8032Test1PublicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    /// <summary>RFC 8032 section 7.1, TEST 1: signature of the empty message.</summary>
    public const string Rfc8032Test1Signature =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    /// <summary>RFC 8032 section 7.1, TEST 2 (message is the single byte 0x72).</summary>
    public const string Rfc8032Test2Seed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

    public const string Rfc8032Test2PublicKey = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

    public const string Rfc8032Test2Signature =
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

    /// <summary>hashlib.sha256(bytes.fromhex(Rfc8032Test1PublicKey)).digest()[:20].hex()</summary>
    public const string Test1Guid = "21fe31dfa154a261626bf854046fd2271b7bed4b";

    /// <summary>2026-01-02T03:04:05.678Z = 1767323045678 ms = 0x0000019b7ca98f2e.</summary>
    public static readonly DateTimeOffset IssuedAt = new(2026, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);

    /// <summary><see cref="IssuedAt"/> in unix milliseconds, as record and removal bodies carry it.</summary>
    public static readonly long IssuedAtMs = IssuedAt.ToUnixTimeMilliseconds();

    public const ulong RecordVersion = 7;
    public const uint RecordTtl = 30;
    public const string RecordName = "alpha-1";

    public static readonly Locator[] RecordLocators =
    [
        new(IPAddress.Parse("192.0.2.10"), 4433, LocatorKind.Host),
        new(IPAddress.Parse("2001:db8::1"), 4433, LocatorKind.Host),
        new(IPAddress.Parse("198.51.100.7"), 50000, LocatorKind.Observed),
        new(IPAddress.Parse("2001:db8:ffff::2"), 443, LocatorKind.Relay),
    ];

    /// <summary>Ed25519 signature (TEST 1 key) over 0x16 || "mobility/gns-record/v1" || record body.</summary>
    public const string RecordSignature =
        "6c1ec71da6e67a2b5b2de960ae68dd26a37c6b69af48ab590f72482b8faaf8f73dbf75d6feccb97dde19eb50e7fedf3c4fd58f1e0d9777009b4b0c75a35ddf0f";

    public const ulong RemovalVersion = 8;

    /// <summary>Ed25519 signature (TEST 1 key) over 0x16 || "mobility/gns-remove/v1" || removal body.</summary>
    public const string RemovalSignature =
        "818f4fa0a254e072a746831eb0bfa4a3ca8e475271afea0bc45f919719971301176b405f0a09ea53ad61c6adeae9dadbb1939ec4bca25ff49e95a96e9f6ee704";

    /// <summary>
    /// The record body written out field by field from the layout in docs/protocol.md, "GNS record"
    /// (not produced by the code under test).
    /// </summary>
    public static byte[] RecordBody() => Hex(
        "01",                                                                   // format
        Test1Guid,                                                              // guid
        Rfc8032Test1PublicKey,                                                  // public key
        "0000000000000007",                                                     // version 7
        "0000019b7ca98f2e",                                                     // issued at (unix ms)
        "0000001e",                                                             // ttl 30 s
        "07", "616c7068612d31",                                                 // name "alpha-1"
        "04",                                                                   // 4 locators
        "01", "04", "c000020a", "1151",                                         // host 192.0.2.10:4433
        "01", "06", "20010db8000000000000000000000001", "1151",                 // host [2001:db8::1]:4433
        "02", "04", "c6336407", "c350",                                         // observed 198.51.100.7:50000
        "03", "06", "20010db8ffff00000000000000000002", "01bb");                // relay [2001:db8:ffff::2]:443

    /// <summary>The removal body: format, guid, version 8, issued at.</summary>
    public static byte[] RemovalBody() => Hex("01", Test1Guid, "0000000000000008", "0000019b7ca98f2e");

    /// <summary>The worked example's whole record: <see cref="RecordBody"/> || <see cref="RecordSignature"/>.</summary>
    public static byte[] SignedRecord() => Concat(RecordBody(), Convert.FromHexString(RecordSignature));

    /// <summary>The worked example's whole removal: <see cref="RemovalBody"/> || <see cref="RemovalSignature"/>.</summary>
    public static byte[] SignedRemoval() => Concat(RemovalBody(), Convert.FromHexString(RemovalSignature));

    public static HostKey Test1Key() => HostKey.FromSeed(Convert.FromHexString(Rfc8032Test1Seed));

    public static GnsRecord Record(HostKey key) => GnsRecord.Create(
        key, RecordVersion, RecordLocators, RecordTtl, RecordName, IssuedAt);

    public static byte[] Hex(params string[] parts) => Convert.FromHexString(string.Concat(parts));

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
