using BenchmarkDotNet.Attributes;
using Mobility.Protocol.Identity;

namespace Mobility.Bench.Micro;

/// <summary>GUID derivation (SHA-256 of the key, done by the GNS on every update) and its text form.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class GuidBenchmarks
{
    private byte[] _publicKey = null!;
    private HostGuid _guid;
    private string _text = null!;
    private readonly char[] _chars = new char[HostGuid.TextLength];

    [GlobalSetup]
    public void Setup()
    {
        using var key = Fixtures.Key();
        _publicKey = key.PublicKeyBytes();
        _guid = key.Guid;
        _text = _guid.ToString();
    }

    [Benchmark(Baseline = true, Description = "HostGuid.FromPublicKey")]
    public HostGuid FromPublicKey() => HostGuid.FromPublicKey(_publicKey);

    [Benchmark(Description = "HostGuid.Parse")]
    public HostGuid Parse() => HostGuid.Parse(_text);

    [Benchmark(Description = "HostGuid.ToString")]
    public string Format() => _guid.ToString();

    [Benchmark(Description = "HostGuid.TryFormat (span)")]
    public bool TryFormat() => _guid.TryFormat(_chars, out _, default, null);
}
