using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Tests.Storage;

internal static class StoreTestSupport
{
    public static Locator At(string address, ushort port = 4000, LocatorKind kind = LocatorKind.Host)
        => new(IPAddress.Parse(address), port, kind);

    public static GnsRecord Record(HostKey key, ulong version, string? name = null, params string[] addresses)
        => GnsRecord.Create(key, version, addresses.Select(a => At(a)), ttlSeconds: 30, name: name);
}

/// <summary>The host keys one test makes, disposed together when the test ends.</summary>
internal sealed class TestKeys : IDisposable
{
    private readonly List<HostKey> _keys = [];

    /// <summary>A fresh key, disposed with the others.</summary>
    public HostKey New() => Add(HostKey.Generate());

    /// <summary>Takes <paramref name="key"/> over: it is disposed with the others.</summary>
    public HostKey Add(HostKey key)
    {
        _keys.Add(key);
        return key;
    }

    public void Dispose()
    {
        foreach (var key in _keys)
        {
            key.Dispose();
        }
    }
}

/// <summary>A folder under the temp directory, deleted with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mobility-gns-store-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
