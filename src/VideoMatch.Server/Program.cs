using Microsoft.Extensions.Options;
using VideoMatch.Server;

try
{
    var app = ServerApp.Build(args);
    app.Run();
    return 0;
}
catch (Exception e) when (e is OptionsValidationException or InvalidOperationException)
{
    // A bad setting or a model that cannot load: one clear line for the operator, and a failing exit code.
    Console.Error.WriteLine($"VideoMatch server could not start: {e.Message}");
    return 1;
}

/// <summary>The server's entry point (public for the functional tests' host).</summary>
public partial class Program;
