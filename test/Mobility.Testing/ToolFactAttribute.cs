namespace Mobility.Testing;

/// <summary>A test that needs a command-line tool (openssl, dig, ...); skipped with the reason when it is not on the PATH.</summary>
public sealed class ToolFactAttribute : FactAttribute
{
    public ToolFactAttribute(string tool, string package)
    {
        if (!Tool.Exists(tool))
        {
            Skip = $"{tool} is not on PATH: install {package} (apt-get install {package}) to run this test.";
        }
    }
}
