using BenchmarkDotNet.Attributes;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Protocol.Wire;

namespace Mobility.Bench.Micro;

/// <summary>
/// What a signed update costs: the owner signs (Create), the GNS decodes and verifies (Decode+Verify).
/// Baseline: one Ed25519 verification alone, which bounds how many updates a core can accept.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class RecordBenchmarks
{
    private HostKey _key = null!;
    private byte[] _encoded = null!;
    private byte[] _publicKey = null!;
    private byte[] _signed = null!;
    private byte[] _signature = null!;
    private ulong _version;

    [GlobalSetup]
    public void Setup()
    {
        _key = Fixtures.Key();
        var record = Fixtures.Record(_key);
        _encoded = record.Encoded.ToArray();
        _publicKey = _key.PublicKeyBytes();
        var body = _encoded.AsSpan(0, _encoded.Length - HostKey.SignatureSize);
        _signed = SigningContext.Compose(SigningContext.GnsRecord, body);
        _signature = record.Signature.ToArray();
    }

    [GlobalCleanup]
    public void Cleanup() => _key.Dispose();

    [Benchmark(Baseline = true, Description = "Signatures.Verify (Ed25519 alone)")]
    public bool VerifySignature() => Signatures.Verify(_publicKey, _signed, _signature);

    [Benchmark(Description = "GnsRecord.Decode + Verify")]
    public bool DecodeAndVerify() => GnsRecord.Decode(_encoded).Verify();

    [Benchmark(Description = "GnsRecord.Decode")]
    public GnsRecord Decode() => GnsRecord.Decode(_encoded);

    [Benchmark(Description = "GnsRecord.Create (sign)")]
    public GnsRecord Create() => Fixtures.Record(_key, ++_version);
}
