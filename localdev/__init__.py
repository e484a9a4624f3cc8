"""Local stand-ins for Microsoft Entra ID and Azure OpenAI, for laptops and tests. Never imported by product code."""
